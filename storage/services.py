"""The storage app's front door for writes: the ContentStore in use, and putting blobs in it."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import IO

from django.conf import settings

from .pins import pin_ensure, pins_ensure_many, pins_wake
from .stores import ContentStore, LocalStore, StoredBlob

__all__ = [
    "blob_put_bytes",
    "blob_put_file",
    "get_store",
    "iter_file",
    "pin_ensure",
    "pins_ensure_many",
    "pins_wake",
]

READ_CHUNK = 256 * 1024


@lru_cache(maxsize=1)
def get_store() -> ContentStore:
    """The configured store: an IPFS node when IPFS_API_URL is set, else LocalStore under var/."""
    if settings.IPFS_API_URL:
        from .ipfs import IpfsStore  # imported lazily: the demo never needs the IPFS client

        # Verified blocks fetched from the node are kept under the store dir: media served again
        # costs no round trip. Safe to delete at any time (see docs/storage.md).
        return IpfsStore(settings.IPFS_API_URL, cache_dir=settings.KYODO_STORE_DIR / "ipfs-cache")
    return LocalStore(settings.KYODO_STORE_DIR)


def iter_file(fp: IO[bytes], chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
    fp.seek(0)
    while chunk := fp.read(chunk_size):
        yield chunk


def blob_put_file(*, fp: IO[bytes]) -> StoredBlob:
    """Store a file's bytes, streaming; the same bytes always give the same CID."""
    return get_store().put_stream(iter_file(fp))


def blob_put_bytes(*, data: bytes) -> StoredBlob:
    return get_store().put_bytes(data)

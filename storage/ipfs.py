"""IpfsStore: the ContentStore over an IPFS node's RPC API (Kubo, or js-ipfs in CI).

Two layers:

* :class:`IpfsClient`, our one door to the node: ``ipfshttpclient.Client(addr)`` (never
  ``connect()``, whose version gate rejects every current daemon), per-call timeouts, retries of
  transient connection failures for idempotent calls, and errors translated into
  :class:`IpfsUnavailable` / :class:`IpfsRequestFailed` / :class:`BlobNotFound`.
* :class:`IpfsStore`, a :class:`~storage.stores.DagStore`: writes go through ``add`` with exactly
  the options that make any node produce Kubo's CIDv1 (see ``ADD_OPTIONS``), reads fetch single
  blocks with ``block/get`` and are re-hashed by the DagStore walker, so a node (or anything between
  us and it) that returns other bytes for a CID raises ``CorruptBlock`` and is never served.

The node's answer to ``add`` is not trusted either: the same bytes go through our own importer
while they stream, and a different root CID raises :class:`CidMismatch` (a node configured with
another chunker or hash would otherwise silently give the platform CIDs it cannot reproduce).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import ipfshttpclient
from ipfshttpclient import exceptions as ipfs_exc
from ipfshttpclient import multipart

from storage.blockstore import FlatFsBlockstore, MissingBlock
from storage.cid import block_matches, cid_decode
from storage.stores import BlobNotFound, DagStore, StorageError, StoredBlob
from storage.unixfs import CHUNK_SIZE, Buffer, Importer, cid_of_bytes

logger = logging.getLogger(__name__)

# ipfshttpclient 0.7.0 still passes urllib3 1.x's `strict` argument; harmless, but noisy per call.
warnings.filterwarnings("ignore", message="The 'strict' parameter", category=FutureWarning)

# What makes js-ipfs and Kubo give the CIDs of storage.unixfs: CIDv1, raw leaves, base32 strings,
# Kubo's fixed-size chunker spelled out (a node's default may differ), sha2-256 (the default).
ADD_OPTIONS: dict[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "cid-base": "base32",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
}
# What the multipart encoder hands the HTTP layer at a time; the node re-chunks anyway.
UPLOAD_PIECE = 1 << 20
# One `add` of many files (IpfsStore.put_many) carries at most this many files and bytes.
ADD_MANY_FILES = 1000
ADD_MANY_BYTES = 16 << 20

T = TypeVar("T")


class IpfsError(Exception):
    """The IPFS node could not do what was asked. ``transient`` says whether a retry may help."""

    transient = False

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"IPFS {operation}: {message}")
        self.operation = operation


class IpfsUnavailable(IpfsError):
    """No answer from the node: refused, reset or timed out. Worth retrying later."""

    transient = True


class IpfsRequestFailed(IpfsError):
    """The node answered with an error (bad argument, internal failure, ...)."""


class CidMismatch(StorageError):
    """The node named the stored bytes ``cid`` but they hash to ``expected``: misconfigured node."""

    def __init__(self, cid: str, expected: str) -> None:
        super().__init__(
            cid,
            f"IPFS node returned {cid} for bytes whose Kubo CIDv1 is {expected}: check that it "
            "honours cid-version=1, raw-leaves and the size-262144 chunker",
        )
        self.expected = expected


def api_multiaddr(api: str) -> str:
    """``http://host:port`` or an ``/ip4/.../tcp/...`` multiaddr, as the client's multiaddr."""
    if api.startswith("/"):
        return api
    url = urllib.parse.urlsplit(api)
    if url.scheme not in ("http", "https") or not url.hostname or not url.port:
        raise ValueError(
            f"IPFS API address must be http(s)://host:port or a multiaddr, got {api!r}"
        )
    if url.path not in ("", "/", "/api/v0", "/api/v0/"):
        raise ValueError(f"IPFS API address must not carry a path other than /api/v0: {api!r}")
    host = url.hostname
    if host.replace(".", "").isdigit():
        proto = "ip4"
    elif ":" in host:
        proto = "ip6"
    else:
        proto = "dns"
    return f"/{proto}/{host}/tcp/{url.port}/{url.scheme}"


class IpfsClient:
    """The RPC calls Kyodo makes, with timeouts, retries and our own errors.

    One ``ipfshttpclient.Client`` (and its pooled HTTP session) per thread: a web process shares
    the store between request threads, and a requests session is not safe to share.
    """

    def __init__(
        self,
        api: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        retry_delay: float = 0.25,
    ) -> None:
        self.api = api
        self.addr = api_multiaddr(api)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self._local = threading.local()

    def _client(self) -> ipfshttpclient.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = ipfshttpclient.Client(
                self.addr, session=True, timeout=(self.connect_timeout, self.timeout)
            )
            self._local.client = client
        return client

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            with contextlib.suppress(Exception):
                client.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _call(
        self, operation: str, fn: Callable[[ipfshttpclient.Client], T], *, retry: bool = True
    ) -> T:
        """Run ``fn`` against the node, retrying refused or reset connections when ``retry``.

        A read timeout is not retried: the node is up but slow or searching, and asking again
        would only multiply the wait.
        """
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                return fn(self._client())
            except ipfs_exc.ConnectionError as exc:
                self.close()  # a broken pooled connection must not poison the next call
                if attempt == attempts:
                    raise IpfsUnavailable(operation, f"{self.api}: {_reason(exc)}") from exc
                logger.info("IPFS %s: %s; retry %d", operation, _reason(exc), attempt)
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            except (ipfs_exc.TimeoutError, ipfs_exc.ProtocolError) as exc:
                self.close()
                raise IpfsUnavailable(operation, f"{self.api}: {_reason(exc)}") from exc
            except ipfs_exc.Error as exc:  # ErrorResponse and friends: the node said no
                raise IpfsRequestFailed(operation, _reason(exc)) from exc
        raise AssertionError("unreachable")

    def _request(
        self,
        path: str,
        *args: str,
        opts: dict[str, str] | None = None,
        node_timeout: float | None = None,
        **kwargs: Any,
    ) -> Callable[[Any], Any]:
        """A call of ``path``. ``node_timeout`` is also sent to the node (its global ``timeout``
        option), so a lookup of a block it lacks ends there with an error instead of hanging."""
        options = dict(opts or {})
        read_timeout = self.timeout
        if node_timeout is not None:
            options["timeout"] = f"{node_timeout:g}s"
            read_timeout = node_timeout + 5.0

        def go(client: ipfshttpclient.Client) -> Any:
            # The low-level request: the public wrappers lack options we need (cid-base, timeout).
            return client._client.request(
                path, args, opts=options, timeout=(self.connect_timeout, read_timeout), **kwargs
            )

        return go

    # -- calls --------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        result = self._call("version", self._request("/version", decoder="json"))
        return dict(result[0])

    def add(self, chunks: Iterable[bytes], *, pin: bool) -> str:
        """Stream ``chunks`` as one file; return the root CID the node reports.

        Retried only when the connection failed before the first chunk was consumed: an iterable
        cannot be replayed, and the node may have taken half a file.
        """
        started = False

        def body() -> Iterator[bytes]:
            nonlocal started
            started = True
            yield from chunks

        opts = {**ADD_OPTIONS, "pin": "true" if pin else "false", "progress": "false"}
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            stream_body, headers = multipart.stream_bytes(body(), chunk_size=UPLOAD_PIECE)
            try:
                result = self._call(
                    "add",
                    self._request(
                        "/add", opts=opts, data=stream_body, headers=headers, decoder="json"
                    ),
                    retry=False,
                )
                break
            except IpfsUnavailable as exc:
                if started or attempt == attempts:
                    raise
                logger.info("IPFS add: %s; retry %d", exc, attempt)
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
        roots = [item for item in result if "Hash" in item]
        if len(roots) != 1:
            raise IpfsRequestFailed("add", f"expected one added file, got {result!r:.200}")
        return str(roots[0]["Hash"])

    def add_many(self, blobs: Sequence[bytes], *, pin: bool) -> list[str]:
        """Add ``blobs`` as separate files in one request; their root CIDs, in order.

        The body is built in memory (the caller bounds it: ``ADD_MANY_BYTES``), so unlike
        :meth:`add` it can be sent again, and a refused connection is retried.
        """
        if not blobs:
            return []
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for index, data in enumerate(blobs):
            parts += [
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{index}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
                data,
                b"\r\n",
            ]
        parts.append(f"--{boundary}--\r\n".encode())
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        opts = {**ADD_OPTIONS, "pin": "true" if pin else "false", "progress": "false"}
        result = self._call(
            "add",
            self._request("/add", opts=opts, data=b"".join(parts), headers=headers, decoder="json"),
        )
        added = [item for item in result if "Hash" in item]
        if len(added) != len(blobs):
            raise IpfsRequestFailed(
                "add", f"sent {len(blobs)} files, {len(added)} added: {result!r:.200}"
            )
        names = [str(item.get("Name", "")) for item in added]
        if sorted(names) == sorted(str(index) for index in range(len(blobs))):
            # Kubo names each file as sent: match by name.
            by_name = dict(zip(names, (str(item["Hash"]) for item in added), strict=True))
            return [by_name[str(index)] for index in range(len(blobs))]
        # js-ipfs names them by their CID, in the order sent (IpfsStore checks each CID anyway).
        return [str(item["Hash"]) for item in added]

    def block_get(self, cid: str, *, timeout: float | None = None) -> bytes:
        """Block ``cid``; :class:`BlobNotFound` if the node cannot produce it within ``timeout``."""
        try:
            data = self._call(
                "block/get",
                self._request("/block/get", cid, node_timeout=timeout or self.timeout),
            )
        except IpfsRequestFailed as exc:
            if _is_not_found(exc):
                raise BlobNotFound(cid) from exc
            raise
        return bytes(data)

    def block_stat(self, cid: str, *, timeout: float = 2.0) -> int:
        """Size of block ``cid`` held locally; :class:`BlobNotFound` if the node lacks it.

        ``offline`` keeps Kubo from searching the network; js-ipfs ignores it, hence the timeout.
        """
        try:
            result = self._call(
                "block/stat",
                self._request(
                    "/block/stat", cid, offline=True, node_timeout=timeout, decoder="json"
                ),
            )
        except IpfsRequestFailed as exc:
            if _is_not_found(exc):
                raise BlobNotFound(cid) from exc
            raise
        return int(result[0]["Size"])

    def pin_add(self, cid: str, *, timeout: float | None = None) -> None:
        """Pin ``cid`` recursively. Idempotent on the node: pinning a pinned CID is a no-op."""
        result = self._call(
            "pin/add",
            self._request(
                "/pin/add",
                cid,
                opts={"recursive": "true", "cid-base": "base32"},
                node_timeout=timeout or self.timeout,
                decoder="json",
            ),
        )
        pinned = {str(p) for item in result for p in item.get("Pins", [])}
        if pinned and cid not in pinned:
            raise IpfsRequestFailed("pin/add", f"asked to pin {cid}, node pinned {sorted(pinned)}")

    def pin_rm(self, cid: str) -> None:
        self._call("pin/rm", self._request("/pin/rm", cid, decoder="json"))

    def pin_ls(self, cids: Iterable[str] = (), *, pin_type: str = "recursive") -> set[str]:
        """The CIDs among ``cids`` pinned with ``pin_type``; every such pin if none are given.

        One request per CID: asked about several at once, a node fails the whole call when one
        of them is not pinned.
        """
        opts = {"type": pin_type, "cid-base": "base32"}
        wanted = list(cids)
        if not wanted:
            return _pin_keys(
                self._call("pin/ls", self._request("/pin/ls", opts=opts, decoder="json"))
            )
        found: set[str] = set()
        for cid in wanted:
            try:
                result = self._call(
                    "pin/ls", self._request("/pin/ls", cid, opts=opts, decoder="json")
                )
            except IpfsRequestFailed as exc:
                if "not pinned" in str(exc).lower():  # an answer, not a failure
                    continue
                raise
            found |= _pin_keys(result) & {cid}
        return found

    def dag_import(self, car: IO[bytes], *, pin_roots: bool = True) -> list[str]:
        """Import a CAR stream (``dag/import``); return the root CIDs the node reports."""
        body, headers = multipart.stream_files(car, chunk_size=UPLOAD_PIECE)
        opts = {"pin-roots": "true" if pin_roots else "false", "cid-base": "base32"}
        result = self._call(
            "dag/import",
            self._request("/dag/import", opts=opts, data=body, headers=headers, decoder="json"),
            retry=False,  # the stream is consumed on the first try
        )
        roots: list[str] = []
        for item in result:
            root = item.get("Root")
            if isinstance(root, dict):
                cid = root.get("Cid")
                roots.append(str(cid["/"] if isinstance(cid, dict) else cid))
        return roots


class IpfsStore(DagStore):
    """ContentStore over an IPFS node. Same CIDs as LocalStore; every read verified.

    ``cache_dir``, when given, keeps the blocks this process has fetched and verified (same flat
    layout as LocalStore), so media served repeatedly costs one round trip per block once. The
    cache is safe to delete at any time; a damaged cached block is dropped and fetched again.
    """

    def __init__(
        self,
        api: str,
        *,
        cache_dir: Path | None = None,
        client: IpfsClient | None = None,
        pin_on_add: bool = True,
        verify_put: bool = True,
        timeout: float = 60.0,
        pin_timeout: float = 300.0,
    ) -> None:
        self.client = client or IpfsClient(api, timeout=timeout)
        self.pin_timeout = pin_timeout
        self.cache = FlatFsBlockstore(Path(cache_dir), fsync=False) if cache_dir else None
        self.pin_on_add = pin_on_add
        self.verify_put = verify_put

    def get_block(self, cid: str) -> bytes:
        cid_decode(cid)  # InvalidCid before any network call
        if self.cache is not None:
            with contextlib.suppress(MissingBlock):
                data = self.cache.get(cid)
                if block_matches(cid, data):
                    return data
                logger.warning("dropping damaged cached block %s", cid)
                self.cache.delete(cid)
        data = self.client.block_get(cid)
        # Cache only what verifies; the DagStore walker checks the returned bytes again either way.
        if self.cache is not None and block_matches(cid, data):
            self.cache.put(cid, data)
        return data

    def has(self, cid: str) -> bool:
        cid_decode(cid)
        try:
            self.client.block_stat(cid)
        except BlobNotFound:
            return False
        return True

    def put_stream(self, chunks: Iterable[Buffer]) -> StoredBlob:
        importer = Importer() if self.verify_put else None
        size = 0

        def pieces() -> Iterator[bytes]:
            nonlocal size
            for piece in chunks:
                data = piece if isinstance(piece, bytes) else bytes(piece)
                if not data:
                    continue
                size += len(data)
                if importer is not None:
                    importer.write(data)
                yield data

        cid = self.client.add(pieces(), pin=self.pin_on_add)
        if importer is not None:
            expected = importer.finish().cid
            if cid != expected:
                raise CidMismatch(cid, expected)
        return StoredBlob(cid=cid, size=size)

    def put_many(self, blobs: Sequence[Buffer]) -> list[StoredBlob]:
        """Blobs in as few ``add`` requests as the bounds allow (one per ``ADD_MANY_FILES`` files or
        ``ADD_MANY_BYTES`` bytes), not one each; every CID the node reports is checked against
        ours, computed here."""
        stored: list[StoredBlob] = []
        group: list[bytes] = []
        size = 0
        for piece in blobs:
            data = piece if isinstance(piece, bytes) else bytes(piece)
            if group and (len(group) == ADD_MANY_FILES or size + len(data) > ADD_MANY_BYTES):
                stored += self._add_group(group)
                group, size = [], 0
            group.append(data)
            size += len(data)
        stored += self._add_group(group)
        return stored

    def _add_group(self, group: list[bytes]) -> list[StoredBlob]:
        cids = self.client.add_many(group, pin=self.pin_on_add)
        if self.verify_put:
            for cid, data in zip(cids, group, strict=True):
                expected = cid_of_bytes(data)
                if cid != expected:
                    raise CidMismatch(cid, expected)
        return [StoredBlob(cid=cid, size=len(data)) for cid, data in zip(cids, group, strict=True)]

    def pin(self, cid: str) -> None:
        cid_decode(cid)
        try:
            self.client.pin_add(cid, timeout=self.pin_timeout)
        except IpfsRequestFailed as exc:
            if _is_not_found(exc):
                raise BlobNotFound(cid) from exc
            raise


def _pin_keys(result: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for item in result:
        keys = item.get("Keys")
        if isinstance(keys, dict):  # {"Keys": {cid: {"Type": ...}}}
            found.update(keys)
        elif "Cid" in item:  # the streaming form: {"Cid": ..., "Type": ...}
            found.add(str(item["Cid"]))
    return found


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_not_found(exc: BaseException) -> bool:
    # Kubo: "block was not found locally (offline)", "ipld: could not find ...", and "context
    # deadline exceeded" when its own timeout ends a network search; js-ipfs looks until the
    # request's timeout: "request timed out". All mean the node cannot produce the block.
    text = str(exc).lower()
    markers = ("not found", "notfound", "could not find", "timed out", "deadline exceeded")
    return any(marker in text for marker in markers)

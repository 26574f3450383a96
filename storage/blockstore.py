"""Blocks as files: one file per block, sharded into sub-directories, like Kubo's flatfs.

Layout: ``<root>/<last two characters of the CID>/<CID>``. The two characters give 256 shard
directories for our CIDs (the last base32 character of a 36-byte CID carries only 3 bits), which
keeps directories to tens of thousands of entries at 10 million blocks.

A write goes to a temporary file in the shard directory, is flushed, and is renamed into place, so
a reader never sees a partial block and a crash leaves at most a dot-prefixed temporary file, which
listing skips. Puts are idempotent: an existing block is not rewritten. The store trusts the CID a
caller passes with the data; readers verify every block against its CID (see ``storage.stores``),
so a wrong or damaged file is caught where it matters.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

from storage.cid import CANONICAL_CID, InvalidCid, cid_decode

_TMP_PREFIX = ".tmp-"
_FILE_MODE = 0o644
# O_TRUNC: a temporary file of this name can only be a dead run's leftover (the name carries the
# PID and thread), so it is overwritten; O_NOFOLLOW: never write through a link planted there.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

Buffer = bytes | bytearray | memoryview


class MissingBlock(KeyError):
    """No file for this CID in the block store."""


class FlatFsBlockstore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        # fsync=False is for tests and throwaway stores: rename alone is atomic but not durable.
        self.root = Path(root)
        self.fsync = fsync
        # Inside `group_sync()` this thread's writes skip their own fsyncs; one sync of the whole
        # file system at the end makes them durable together (a group commit).
        self._local = threading.local()
        # Shard directories known to exist (put_many makes each once per process).
        self._folders: set[str] = set()

    @contextlib.contextmanager
    def group_sync(self) -> Iterator[None]:
        """Make every block written in the block durable with one sync when it ends.

        Callers end the block before they commit rows that point at the blocks.
        """
        if getattr(self._local, "grouped", False) or not self.fsync:
            yield
            return
        self._local.grouped = True
        self._local.wrote = False
        try:
            yield
        finally:
            self._local.grouped = False
        if self._local.wrote:
            _sync_filesystem(self.root)

    def _must_fsync(self) -> bool:
        if getattr(self._local, "grouped", False):
            self._local.wrote = True
            return False
        return self.fsync

    def path_for(self, cid: str) -> Path:
        # The CID becomes a file name: validating it (InvalidCid otherwise) rules out path
        # traversal and a second spelling of one block.
        cid_decode(cid)
        return self.root / cid[-2:] / cid

    def has(self, cid: str) -> bool:
        return self.path_for(cid).is_file()

    def get(self, cid: str) -> bytes:
        try:
            return self.path_for(cid).read_bytes()
        except FileNotFoundError:
            raise MissingBlock(cid) from None

    def put(self, cid: str, data: bytes) -> bool:
        """Store ``data`` under ``cid``; return False when the block was already there."""
        path = self.path_for(cid)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fsync = self._must_fsync()
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), _FILE_MODE)  # mkstemp creates 0600
                if fsync:
                    os.fsync(fh.fileno())
            # A concurrent put of the same CID may win the rename: same bytes either way.
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if fsync:
            _fsync_dir(path.parent)
        return True

    def put_many(self, blocks: Iterable[tuple[str, Buffer]]) -> int:
        """:meth:`put` for many blocks; returns how many were new (the rest were there already).

        Same guarantees as ``put`` (a temporary file renamed into place, idempotent, durable on
        return or at the end of ``group_sync``), at about half its cost per block, which is what
        an import of many small texts spends most on: no ``mkstemp`` (the temporary name is this
        thread's and the CID's, so it cannot clash with another writer's), each shard directory
        made once, and outside ``group_sync`` each directory synced once for the lot. CIDs are
        checked against :data:`CANONICAL_CID` (they become file names), not decoded.
        """
        fsync: bool | None = None  # asked at the first new block: group_sync then has a write
        tag = f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-"
        root = str(self.root)
        touched: set[str] = set()
        new = 0
        for cid, data in blocks:
            if not CANONICAL_CID.fullmatch(cid):
                cid_decode(cid)  # raises InvalidCid with the reason
                raise InvalidCid(f"{cid!r}: not a canonical CID")
            folder = f"{root}/{cid[-2:]}"
            path = f"{folder}/{cid}"
            if os.path.exists(path):
                continue
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            if fsync is None:
                fsync = self._must_fsync()
            _write_new(f"{folder}/{tag}{cid}", path, data, fsync=fsync)
            touched.add(folder)
            new += 1
        if fsync:
            for folder in touched:
                _fsync_dir(Path(folder))
        return new

    def delete(self, cid: str) -> None:
        """Remove a block; a missing block is not an error (deletes are idempotent)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(cid).unlink()

    def __iter__(self) -> Iterator[str]:
        """Every stored CID, in no particular order (for garbage collection and audits)."""
        if not self.root.is_dir():
            return
        for shard in self.root.iterdir():
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for entry in shard.iterdir():
                if not entry.name.startswith(".") and entry.name.endswith(shard.name):
                    yield entry.name


def _write_new(tmp: str, path: str, data: Buffer, *, fsync: bool) -> None:
    """Write ``data`` to ``tmp`` and rename it to ``path``; no file is left behind on failure."""
    try:
        fd = os.open(tmp, _WRITE_FLAGS, _FILE_MODE)
    except FileNotFoundError:
        # The shard directory went away under us (a cleanup): make it again, once.
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        fd = os.open(tmp, _WRITE_FLAGS, _FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, _FILE_MODE)  # as put: whatever the umask, readers of the store can read
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        # A concurrent writer of the same CID may win the rename: same bytes either way.
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; without it a power cut can lose a block whose root is kept.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return cast("Callable[[int], int]", libc.syncfs)
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def _sync_filesystem(root: Path) -> None:
    """Flush every pending write of the file system holding ``root`` (Linux syncfs), or all."""
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)

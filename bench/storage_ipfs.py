"""Put throughput of the same files into LocalStore and into an IPFS node (IpfsStore), as a ratio.

    .venv/bin/python -m bench.storage_ipfs                       # starts a tools/ipfs node itself
    .venv/bin/python -m bench.storage_ipfs --api http://127.0.0.1:5001 --files 10000 --kib 24

Both stores run as production configures them: LocalStore with fsync, IpfsStore pinning on add and
checking the node's CID against our own importer. Each set is put once per store, in the same
process, one file after another (as the ingest job does). ``bench.storage`` can call
:func:`compare_put` with its own files (the 10,000 ingest images) for the IPFS ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from storage.ipfs import IpfsStore
from storage.stores import ContentStore, LocalStore

MIB = 1 << 20


@dataclass(frozen=True)
class Throughput:
    files: int
    bytes: int
    seconds: float

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.seconds


@dataclass(frozen=True)
class PutComparison:
    label: str
    local: Throughput
    ipfs: Throughput

    @property
    def ratio(self) -> float:
        """IpfsStore throughput as a fraction of LocalStore's (1.0 = as fast)."""
        return self.local.seconds / self.ipfs.seconds

    def as_dict(self) -> dict[str, object]:
        def side(t: Throughput) -> dict[str, float | int]:
            return {
                **asdict(t),
                "files_per_s": round(t.files_per_s, 1),
                "mib_per_s": round(t.mib_per_s, 1),
            }

        return {
            "set": self.label,
            "local": side(self.local),
            "ipfs": side(self.ipfs),
            "ipfs_over_local": round(self.ratio, 3),
        }


def put_throughput(store: ContentStore, files: Sequence[bytes]) -> tuple[Throughput, list[str]]:
    started = time.perf_counter()
    cids = [store.put_bytes(data).cid for data in files]
    elapsed = time.perf_counter() - started
    return Throughput(len(files), sum(map(len, files)), elapsed), cids


def compare_put(
    label: str, files: Sequence[bytes], *, ipfs_api: str, local_dir: Path, fsync: bool = True
) -> PutComparison:
    local_t, local_cids = put_throughput(LocalStore(local_dir, fsync=fsync), files)
    ipfs = IpfsStore(ipfs_api, timeout=120.0)
    try:
        ipfs_t, ipfs_cids = put_throughput(ipfs, files)
    finally:
        ipfs.client.close()
    if local_cids != ipfs_cids:
        raise AssertionError("LocalStore and the IPFS node disagree on a CID")
    return PutComparison(label, local_t, ipfs_t)


def random_files(count: int, size: int) -> list[bytes]:
    # Random bytes: like JPEG/PNG payloads, incompressible and all distinct (no dedup shortcut).
    return [os.urandom(size) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("IPFS_API_URL", ""), help="IPFS RPC API")
    parser.add_argument("--files", type=int, default=2000, help="small files in the first set")
    parser.add_argument("--kib", type=int, default=32, help="size of each small file")
    parser.add_argument("--large", type=int, default=4, help="files of --large-mib in the second")
    parser.add_argument("--large-mib", type=int, default=16)
    parser.add_argument("--no-fsync", action="store_true", help="LocalStore without fsync")
    args = parser.parse_args(argv)

    from tools.ipfs import start as ipfs_start

    with tempfile.TemporaryDirectory(prefix="kyodo-bench-ipfs-") as tmp:
        node = None
        api = args.api
        if not api:
            node = ipfs_start.start(Path(tmp) / "repo")
            api = node.api_url
        try:
            sets = [
                (f"{args.files} x {args.kib} KiB", random_files(args.files, args.kib * 1024)),
                (
                    f"{args.large} x {args.large_mib} MiB",
                    random_files(args.large, args.large_mib * MIB),
                ),
            ]
            results = [
                compare_put(
                    label,
                    files,
                    ipfs_api=api,
                    local_dir=Path(tmp) / f"local-{i}",
                    fsync=not args.no_fsync,
                ).as_dict()
                for i, (label, files) in enumerate(sets)
            ]
        finally:
            if node is not None:
                ipfs_start.stop_pid(node.pid)
    print(json.dumps({"ipfs_api": api, "fsync": not args.no_fsync, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

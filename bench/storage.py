"""Storage benchmarks (issue 3), each measured against a baseline in the same run.

    .venv/bin/python -m bench.storage                  # CID throughput + LocalStore ingest
    .venv/bin/python -m bench.storage --ipfs           # also ingest into an IPFS node (ratio)

1. CID throughput: `storage.unixfs.cid_of_bytes` over 1 MiB and 100 MiB blobs, as a ratio to plain
   `hashlib.sha256` over the same bytes (target >= 0.7).
2. Ingest: a zip of 10,000 small generated PNGs through the real import service (validate with
   Pillow, store, dedupe, bulk insert, staged then opened), into LocalStore, in a child process
   whose peak RSS is read from the kernel (target >= 500 images/s, peak RSS < 300 MB).
3. The same ingest into an IPFS node (IpfsStore), reported as a ratio to LocalStore.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def cid_ratio(size: int, repeats: int) -> dict[str, float]:
    from storage.unixfs import cid_of_bytes

    data = os.urandom(size)
    best_sha = best_cid = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        best_sha = min(best_sha, time.perf_counter() - t0)
        t0 = time.perf_counter()
        cid_of_bytes(data)
        best_cid = min(best_cid, time.perf_counter() - t0)
    return {
        "mib": size / MIB,
        "sha256_mib_s": round(size / MIB / best_sha, 1),
        "cid_mib_s": round(size / MIB / best_cid, 1),
        "ratio": round(best_sha / best_cid, 3),
    }


def make_zip(path: Path, count: int) -> None:
    from PIL import Image

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            img = Image.new("RGB", (32, 32), (i % 256, (i // 256) % 256, (i * 7) % 256))
            img.putpixel((i % 32, (i // 32) % 32), (255, 255, 255))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            archive.writestr(f"img/{i:05d}.png", buf.getvalue())


def ingest_child(zip_path: str, ipfs_api: str) -> None:
    """Runs in its own process: a fresh database (an embedded PostgreSQL of its own, under its
    own var folder, stopped when the process ends) and store, one import job, timed."""
    work = Path(tempfile.mkdtemp(prefix="kyodo-bench-ingest-"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        KYODO_VAR_DIR=str(work / "var"),
        KYODO_STORE_DIR=str(work / "store"),
        CELERY_TASK_ALWAYS_EAGER="1",
        IPFS_API_URL=ipfs_api,
    )
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    from accounts.models import Role, User
    from labeling.models import ImportJob, TaskType
    from labeling.services import campaign_create, import_job_create, import_job_run

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user(
        email="bench@example.com", password="x" * 12, role=Role.REQUESTER
    )
    campaign = campaign_create(
        owner=owner, title="bench", task_type=TaskType.IMAGE_CLASSIFICATION, label_schema=["a", "b"]
    )
    data = Path(zip_path).read_bytes()
    t0 = time.perf_counter()
    upload = SimpleUploadedFile("bench.zip", data)
    job = import_job_create(campaign=campaign, user=owner, upload=upload)
    done = import_job_run(job_id=job.pk) or ImportJob.objects.get(pk=job.pk)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "status": done.status,
                "created": done.created,
                "seconds": round(seconds, 2),
                "images_s": round(done.created / seconds, 1),
                "peak_rss_mb": round(rss_mb, 1),
            }
        )
    )


def run_ingest(zip_path: Path, ipfs_api: str = "") -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.storage", "--child", str(zip_path), "--child-ipfs", ipfs_api],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--ipfs", action="store_true", help="also ingest into an IPFS node")
    parser.add_argument(
        "--ipfs-api", default="", help="a running node's API (else tools/ipfs is started)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-ipfs", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        ingest_child(args.child, args.child_ipfs)
        return 0

    sys.path.insert(0, str(ROOT))
    results: dict[str, object] = {
        "cid_1mib": cid_ratio(MIB, repeats=20),
        "cid_100mib": cid_ratio(100 * MIB, repeats=3),
    }
    print(json.dumps(results, indent=2), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "images.zip"
        make_zip(zip_path, args.images)
        local = run_ingest(zip_path)
        results["ingest_local"] = local
        print(json.dumps({"ingest_local": local}, indent=2), flush=True)
        if args.ipfs:
            from tools.ipfs import start as ipfs

            node = None if args.ipfs_api else ipfs.start(Path(tmp) / "ipfs")
            try:
                remote = run_ingest(zip_path, args.ipfs_api or node.api_url)  # type: ignore[union-attr]
            finally:
                if node is not None:
                    ipfs.stop(node.repo)
            results["ingest_ipfs"] = remote
            ratio = float(str(local["seconds"])) / float(str(remote["seconds"]))
            results["ipfs_over_local"] = round(ratio, 3)
            print(
                json.dumps({"ingest_ipfs": remote, "ratio": results["ipfs_over_local"]}, indent=2)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real Celery worker process on Redis, sharing the test database with the test process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from config.celery import app as celery_app

from ..conftest import database_url_for_children, need_service

ROOT = Path(__file__).resolve().parents[2]


def _redis_ok(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure means: no usable Redis here
        return str(exc)
    return None


@pytest.fixture
def celery_worker_process(
    transactional_db: Any, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        need_service("redis", "REDIS_URL is not set")
    if problem := _redis_ok(redis_url):
        need_service("redis", problem)
    database_url = database_url_for_children()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "KYODO_STORE_DIR": str(settings.KYODO_STORE_DIR),
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "-l",
            "info",
            "-Q",
            "default,quality,refit,chain,ingest,export",
            "-n",
            f"test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    celery_app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"celery worker did not start:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)
        yield worker
    finally:
        celery_app.conf.task_always_eager = True
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        sys.stdout.write(log.read_text(errors="replace")[-2000:])

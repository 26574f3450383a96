"""Tests: embedded defaults unless DATABASE_URL / REDIS_URL name real services (CI sets them)."""

import os
from pathlib import Path

from .base import *  # noqa: F403
from .base import VAR_DIR, env_bool, env_int

# Fast hashing: the suite creates many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Unit tests run tasks in-process; the integration tests that start a real worker switch this off.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)
KYODO_STORE_DIR = Path(os.environ.get("KYODO_STORE_DIR", VAR_DIR / "test-store" / str(os.getpid())))
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Relayed claims go out at the first tick (tests/rewards/test_claims_api.py checks the wait).
KYODO_CLAIM_BATCH_WAIT_SECONDS = env_int("KYODO_CLAIM_BATCH_WAIT_SECONDS", 0)

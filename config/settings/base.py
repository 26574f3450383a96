"""Settings shared by every environment. Everything a deployment changes comes from the environment.

The demo and the tests need no environment at all: an embedded PostgreSQL server and a LocalStore
under `var/`, and a broker that needs no server. Setting DATABASE_URL / REDIS_URL / IPFS_API_URL /
ETH_RPC_URL switches each part to the real service.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets admin and serializer classes be subscripted with their model types at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("KYODO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "kyodo-insecure-dev-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "accounts",
    "storage",
    "labeling",
    "quality",
    "rewards",
    "datasets",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL is the only engine (docs/architecture.md, "One database engine"). Without
# DATABASE_URL: the embedded server under var/postgres (core/embedded_postgres), started or joined
# at a process's first connection, over its Unix socket.
if os.environ.get("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)
        )
    }
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL names a {DATABASES['default']['ENGINE']} database; Kyodo runs on "
            "PostgreSQL only (postgresql://...). Unset it to use the embedded server."
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "core.embedded_postgres",
            "NAME": "kyodo",
            "USER": "postgres",
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        }
    }
# The hot path's statements are prepared once per connection (core/sql.py); 0 behind a
# PgBouncer in transaction mode that cannot carry prepared statements. Django's own queries bind
# on the client and are never prepared, whatever the threshold.
DATABASE_PREPARE_STATEMENTS = env_bool("DATABASE_PREPARE_STATEMENTS", True)
DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 5 if DATABASE_PREPARE_STATEMENTS else None}
# Next-task and submit of API clients served in front of Django's stack (labeling/fast_lane.py).
KYODO_FAST_LANE = env_bool("KYODO_FAST_LANE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(
    parents=True, exist_ok=True
)  # whitenoise serves from finders; the folder must exist
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Uploads: Django spools anything above this to a temporary file, so no upload is held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exception_handler.api_exception_handler",
    # `?format=` names an export format (datasets), not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kyodo API",
    "DESCRIPTION": (
        "Crowdsourced data labeling with verifiable token rewards. Authenticate with "
        "`Authorization: Token <key>` (POST /api/auth/token/)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files: no CDN needed (or reachable) offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CampaignStatusEnum": "labeling.models.CampaignStatus",
        # Imports and exports share one life cycle (queued, running, done, failed).
        "JobStatusEnum": "core.jobs.JobStatus",
        # Else `kind` of an import collides with other `kind` enums (an unstable `KindC47Enum`).
        "ImportKindEnum": "labeling.models.ImportKind",
    },
}

# Celery. Without REDIS_URL the broker is a folder under var/: no server needed for the demo.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
    if REDIS_URL.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, keeping one client per channel (core/broker.py).
        CELERY_BROKER_TRANSPORT = "core.broker:Transport"
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# A batched task's drain (core/batches.py: the quality update of submitted labels) waits this
# long after the first id of its batch, for more to gather: fewer, bigger batches.
KYODO_BATCH_LINGER_SECONDS = float(os.environ.get("KYODO_BATCH_LINGER_SECONDS", "0.2"))
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {
    # Whole-campaign work (refits, trainings: seconds to minutes each) on a queue of its own, so
    # it never waits behind, nor holds a process of, the per-label updates (issue 22); its
    # worker runs one process at a lower priority (compose.yaml's worker-refit), which bounds its
    # share of the machine.
    "quality.refit_campaign": {"queue": "refit"},
    "quality.train_model": {"queue": "refit"},
    "quality.refit_due": {"queue": "refit"},
    "quality.*": {"queue": "quality"},
    "rewards.*": {"queue": "chain"},
    "storage.*": {"queue": "ingest"},
    "labeling.run_import": {"queue": "ingest"},
    "datasets.*": {"queue": "export"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULE = {
    "expire-leases": {"task": "labeling.expire_leases", "schedule": 60.0},
    "ensure-pins": {"task": "storage.ensure_pins", "schedule": 60.0},
    "resolve-pending-rewards": {"task": "rewards.resolve_pending", "schedule": 300.0},
}

# Kyodo.
KYODO_STORE_DIR = Path(os.environ.get("KYODO_STORE_DIR", VAR_DIR / "store"))
IPFS_API_URL = os.environ.get("IPFS_API_URL", "")
ETH_RPC_URL = os.environ.get("ETH_RPC_URL", "")
KYODO_LEASE_SECONDS = env_int("KYODO_LEASE_SECONDS", 300)
KYODO_MAX_IMAGE_BYTES = env_int("KYODO_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
KYODO_MAX_IMAGE_PIXELS = env_int("KYODO_MAX_IMAGE_PIXELS", 50_000_000)
KYODO_MAX_TEXT_FILE_BYTES = env_int("KYODO_MAX_TEXT_FILE_BYTES", 50 * 1024 * 1024)
KYODO_MAX_TEXT_CHARS = env_int("KYODO_MAX_TEXT_CHARS", 10_000)
KYODO_MAX_ZIP_MEMBERS = env_int("KYODO_MAX_ZIP_MEMBERS", 100_000)

# Sign-In with Ethereum (docs/auth.md): the site a signed message must name, the chain it must be
# for, and how long a server-issued nonce stays usable.
KYODO_SIWE_DOMAIN = os.environ.get("KYODO_SIWE_DOMAIN", "127.0.0.1:8000")
KYODO_SIWE_URI = os.environ.get("KYODO_SIWE_URI", f"http://{KYODO_SIWE_DOMAIN}")
KYODO_CHAIN_ID = env_int("KYODO_CHAIN_ID", 31337)
KYODO_SIWE_NONCE_SECONDS = env_int("KYODO_SIWE_NONCE_SECONDS", 300)

# --- Rewards on-chain (docs/rewards.md). Without ETH_RPC_URL and a deployment (these addresses,
# or the row `manage.py chain_deploy` writes) the chain tasks do nothing.
KYODO_DISTRIBUTOR_ADDRESS = os.environ.get("KYODO_DISTRIBUTOR_ADDRESS", "")
KYODO_TOKEN_ADDRESS = os.environ.get("KYODO_TOKEN_ADDRESS", "")
KYODO_CHAIN_START_BLOCK = env_int("KYODO_CHAIN_START_BLOCK", 0)  # the distributor's deploy block
# Hex private key of the account that submits roots, creates campaigns and relays claims. Empty:
# anvil's first dev key, and only on chain 31337 (the demo); anywhere else the chain tasks refuse.
KYODO_UPDATER_KEY = os.environ.get("KYODO_UPDATER_KEY", "")
KYODO_CHAIN_CONFIRMATIONS = env_int("KYODO_CHAIN_CONFIRMATIONS", 1)  # blocks, 1 = mined
KYODO_CHAIN_RESEND_SECONDS = env_int("KYODO_CHAIN_RESEND_SECONDS", 180)  # then re-send, fee up
KYODO_CHAIN_FEE_BUMP_PERCENT = env_int("KYODO_CHAIN_FEE_BUMP_PERCENT", 25)  # nodes want >= 10
KYODO_CHAIN_PRIORITY_FEE_WEI = env_int("KYODO_CHAIN_PRIORITY_FEE_WEI", 10**9)
KYODO_CHAIN_MAX_FEE_WEI = env_int("KYODO_CHAIN_MAX_FEE_WEI", 500 * 10**9)  # never bid above
KYODO_CHAIN_LOG_RANGE = env_int("KYODO_CHAIN_LOG_RANGE", 2000)  # blocks per eth_getLogs call
KYODO_CHAIN_POLL_SECONDS = env_int("KYODO_CHAIN_POLL_SECONDS", 10)  # the rewards.tick beat
KYODO_EPOCH_SECONDS = env_int(
    "KYODO_EPOCH_SECONDS", 7 * 24 * 3600
)  # a new epoch at most this often
KYODO_PAYOUT_TABLE_PROOFS = env_bool("KYODO_PAYOUT_TABLE_PROOFS", False)  # proofs in the table
# Relayed claims per claimMany transaction (docs/rewards.md); the beat's period is the window.
KYODO_CLAIM_BATCH_SIZE = env_int("KYODO_CLAIM_BATCH_SIZE", 100)
# A part batch waits for company until its oldest request has waited this long: gas per claim
# falls with batch size (bench/GAS.md). 0 sends whatever is queued at every tick.
KYODO_CLAIM_BATCH_WAIT_SECONDS = env_int("KYODO_CLAIM_BATCH_WAIT_SECONDS", 60)
CELERY_BEAT_SCHEDULE["rewards-tick"] = {
    "task": "rewards.tick",
    "schedule": float(KYODO_CHAIN_POLL_SECONDS),
}
# --- end of rewards on-chain settings

# --- Quality engine (docs/quality.md): defaults documented there.
# Cold start: every worker right this often until a refit knows better.
KYODO_QUALITY_PRIOR_ACCURACY = float(os.environ.get("KYODO_QUALITY_PRIOR_ACCURACY", "0.85"))
# Items with 3+ labels (or gold) before a refit's worker estimates are trusted.
KYODO_QUALITY_CALIBRATION_ITEMS = env_int("KYODO_QUALITY_CALIBRATION_ITEMS", 100)
# Raykar-Yu spammer score threshold; suspend at this certainty of being below it; pay (trust)
# at this certainty of being above it.
KYODO_QUALITY_SPAM_THRESHOLD = float(os.environ.get("KYODO_QUALITY_SPAM_THRESHOLD", "0.1"))
KYODO_QUALITY_SPAM_CERTAINTY = float(os.environ.get("KYODO_QUALITY_SPAM_CERTAINTY", "0.95"))
KYODO_QUALITY_TRUST_CERTAINTY = float(os.environ.get("KYODO_QUALITY_TRUST_CERTAINTY", "0.9"))
# A calibrated campaign closes an item once one more label would raise its chance of being
# decided right by less than this; unset: quality.aggregation.policy.MIN_GAIN (0.02).
KYODO_QUALITY_MIN_GAIN = (
    float(os.environ["KYODO_QUALITY_MIN_GAIN"])
    if os.environ.get("KYODO_QUALITY_MIN_GAIN")
    else None
)
# The ML model is trusted at most like this percentile of the campaign's seasoned contributors.
KYODO_QUALITY_MODEL_CAP_PERCENTILE = float(
    os.environ.get("KYODO_QUALITY_MODEL_CAP_PERCENTILE", "90")
)
# A submission asks for a refit after max(MIN_NEW, GROWTH x labels at the last one) new labels;
# the beat refits every campaign with MIN_NEW new labels every REFIT_SECONDS.
KYODO_QUALITY_REFIT_MIN_NEW_LABELS = env_int("KYODO_QUALITY_REFIT_MIN_NEW_LABELS", 50)
KYODO_QUALITY_REFIT_GROWTH = float(os.environ.get("KYODO_QUALITY_REFIT_GROWTH", "0.1"))
KYODO_QUALITY_REFIT_SECONDS = env_int("KYODO_QUALITY_REFIT_SECONDS", 300)
# Refits and trainings take at most this share of one process's CPU: after one that took t
# seconds of CPU the next of either waits t x (1 / share - 1) (quality.services.params.work_pause).
KYODO_QUALITY_REFIT_CPU_SHARE = float(os.environ.get("KYODO_QUALITY_REFIT_CPU_SHARE", "0.1"))
KYODO_QUALITY_TRAIN_MIN_ITEMS = env_int("KYODO_QUALITY_TRAIN_MIN_ITEMS", 30)
KYODO_QUALITY_TRAIN_MAX_ITEMS = env_int("KYODO_QUALITY_TRAIN_MAX_ITEMS", 20_000)
KYODO_QUALITY_PREDICT_MAX_ITEMS = env_int("KYODO_QUALITY_PREDICT_MAX_ITEMS", 50_000)
# The most items one quality update takes from those waiting (core/batches.py): under load a
# batch holds whatever came in during the last one, up to this.
KYODO_QUALITY_BATCH_MAX = env_int("KYODO_QUALITY_BATCH_MAX", 500)
# A label's quality update again when its message was lost (quality/services/sweep.py): labels
# older than this many seconds, checked once a minute.
KYODO_QUALITY_SWEEP_GRACE_SECONDS = env_int("KYODO_QUALITY_SWEEP_GRACE_SECONDS", 120)
CELERY_BEAT_SCHEDULE["quality-sweep-lagging"] = {"task": "quality.sweep_lagging", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["quality-refit-due"] = {
    "task": "quality.refit_due",
    "schedule": float(KYODO_QUALITY_REFIT_SECONDS),
}
# --- end of quality engine settings

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

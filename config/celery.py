"""The Celery app. Workers: `celery -A config worker -Q default,quality,refit,chain,ingest,export`
(compose.yaml splits them by kind)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kyodo")
# Django's CELERY_* settings, as a plain dict (why: config/celery_settings.py).
app.config_from_object("config.celery_settings:CELERY")
app.autodiscover_tasks()

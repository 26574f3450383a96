"""The demo and local development: embedded defaults, nothing to configure."""

from .base import *  # noqa: F403
from .base import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)

"""The demo and local development: embedded defaults, nothing to configure.

A `manage.py` run in a second shell while `make demo` runs takes the demo's service settings
(config/running_demo.py) before the shared settings read the environment.
"""

from config import running_demo

running_demo.apply()

from .base import *  # noqa: E402, F403
from .base import env_bool  # noqa: E402

DEBUG = env_bool("DJANGO_DEBUG", True)

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django_application = get_wsgi_application()

# Next-task and submit of API clients skip Django's request stack (labeling/fast_lane.py).
from labeling.fast_lane import wrap  # noqa: E402 - needs the apps loaded above

application = wrap(django_application)

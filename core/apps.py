from django.apps import AppConfig
from django.core import checks


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from .checks import check_task_names

        # Every task enqueued by name, or run by beat, is a registered Celery task.
        checks.register(check_task_names, "celery")

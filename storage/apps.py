from django.apps import AppConfig


class StorageConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "storage"

    def ready(self) -> None:
        # Register this app's tasks in every process, so enqueue-by-name finds them (and eager
        # mode in tests).
        from . import tasks  # noqa: F401

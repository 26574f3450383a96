from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "datasets"

    def ready(self) -> None:
        # Register this app's tasks in every process, so enqueue-by-name finds them.
        from . import tasks  # noqa: F401

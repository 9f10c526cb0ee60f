from django.apps import AppConfig


class ChecksConfig(AppConfig):
    """Soft rules run by Celery workers: flags, pending checks, webhook alerts."""

    name = "checks"
    verbose_name = "Mass-balance checks"

    def ready(self) -> None:
        # Registers the tasks on the Celery app (ledger.celery autodiscovers only ledger).
        from checks import tasks  # noqa: F401

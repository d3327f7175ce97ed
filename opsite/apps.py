from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OpsiteConfig(AppConfig):
    name = "opsite"
    verbose_name = "opsite"

    def ready(self) -> None:
        from common import scheduling

        from . import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(scheduling.on_post_migrate, dispatch_uid="opsite.sync_periodic_tasks")

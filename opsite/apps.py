from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class OpsiteConfig(AppConfig):
    name = "opsite"
    verbose_name = "opsite"

    def ready(self) -> None:
        from common import dbpool, scheduling

        from . import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(scheduling.on_post_migrate, dispatch_uid="opsite.sync_periodic_tasks")
        connection_created.connect(dbpool.use_idle_check, dispatch_uid="opsite.pool_idle_check")

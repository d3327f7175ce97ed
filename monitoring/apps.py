from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from .checks_builtin import register_builtin
        from .context import install_log_record_factory
        from .queries import install_observer

        install_log_record_factory()
        register_builtin()
        connection_created.connect(install_observer, dispatch_uid="monitoring.query_observer")

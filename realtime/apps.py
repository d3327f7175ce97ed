from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Restaurants and live orders"

    def ready(self) -> None:
        from . import signals  # noqa: F401

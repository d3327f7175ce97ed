from django.urls import path

from monitoring.dashboard.consumers import OpsDashboardConsumer

websocket_urlpatterns = [
    path("ws/ops/", OpsDashboardConsumer.as_asgi()),
]

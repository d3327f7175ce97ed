from monitoring.routing import websocket_urlpatterns as monitoring_patterns
from realtime.routing import websocket_urlpatterns as realtime_patterns

websocket_urlpatterns = [*realtime_patterns, *monitoring_patterns]

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from common.origin import SameOriginValidator  # noqa: E402
from common.socket_auth import SessionAuthMiddleware  # noqa: E402
from monitoring.lifecycle import starting_loops_on_first_use, web_process_started  # noqa: E402
from opsite.checks import enforce_production_settings  # noqa: E402
from opsite.routing import websocket_urlpatterns  # noqa: E402

enforce_production_settings()


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Startup: drain on SIGTERM before uvicorn's own graceful stop, and start the process's loops
    (see monitoring.lifecycle.web_process_started)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            web_process_started()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "lifespan": lifespan,
        "http": starting_loops_on_first_use(django_asgi_app),
        # the Host must be an allowed host, and the Origin this site's own (scheme, host, port)
        "websocket": starting_loops_on_first_use(
            SameOriginValidator(SessionAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)

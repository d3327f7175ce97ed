"""The staff feed's handshake written the textbook Channels way, for comparison: the session
and user read by ``AuthMiddlewareStack``, the restaurant and the access check by
``database_sync_to_async`` on the thread for sync code, the socket joined to its restaurant's
group on channels-redis's layer, then a hello with the stream's head."""

import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")
django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from realtime.models import Restaurant, StaffMembership  # noqa: E402


@database_sync_to_async
def restaurant_for(user: object, slug: str) -> Restaurant | None:
    restaurant = Restaurant.objects.filter(slug=slug).first()
    if restaurant is None:
        return None
    if getattr(user, "is_superuser", False):
        return restaurant
    member = StaffMembership.objects.filter(user_id=getattr(user, "pk", None), restaurant=restaurant).exists()
    return restaurant if member else None


class StaffFeed(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(4401)
            return
        restaurant = await restaurant_for(user, self.scope["url_route"]["kwargs"]["slug"])
        if restaurant is None:
            await self.close(4403)
            return
        self.group = f"baseline.{restaurant.pk}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(json.dumps({"type": "hello", "restaurant": restaurant.slug, "seq": restaurant.last_seq,
                                    "epoch": restaurant.epoch}))  # fmt: skip

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)


application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/restaurants/<slug:slug>/orders/", StaffFeed.as_asgi())]))
        ),
    }
)

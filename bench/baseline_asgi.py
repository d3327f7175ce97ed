"""The textbook Channels feed, for comparison: one group membership per socket on
channels-redis's RedisPubSubChannelLayer, each event encoded and sent per socket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")
django_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

settings.CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": "opsite-baseline"},
    }
}


class GroupFeed(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.group = "baseline." + self.scope["url_route"]["kwargs"]["slug"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send('{"type":"hello"}')

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def order_event(self, message: dict[str, str]) -> None:
        await self.send(message["text"])


application = ProtocolTypeRouter(
    {"http": django_app, "websocket": URLRouter([path("ws/restaurants/<slug:slug>/orders/", GroupFeed.as_asgi())])}
)

from django.urls import path

from .consumers import StaffOrderFeedConsumer

websocket_urlpatterns = [
    path("ws/restaurants/<slug:slug>/orders/", StaffOrderFeedConsumer.as_asgi()),
]

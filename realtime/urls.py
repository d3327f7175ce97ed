from django.urls import path

from . import views

urlpatterns = [
    path("", views.restaurant_index, name="restaurant-index"),
    path("api/v1/orders/events", views.order_events_ingest, name="order-events-ingest"),
    path(
        "api/v1/restaurants/<slug:slug>/orders/events",
        views.order_events_catch_up,
        name="order-events-catch-up",
    ),
    path("restaurants/<slug:slug>/", views.order_board, name="order-board"),
]

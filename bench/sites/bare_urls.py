from django.urls import path

from . import views

urlpatterns = [path("health/live", views.live), path("bench/twenty-queries", views.twenty_queries)]

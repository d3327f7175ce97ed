from django.urls import include, path

from . import views

urlpatterns = [path("bench/twenty-queries", views.twenty_queries), path("", include("opsite.urls"))]

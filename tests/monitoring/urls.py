"""Views that exist only for the monitoring tests: a crash, a slow page, an N+1 page."""

from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def crash(request: HttpRequest) -> JsonResponse:
    raise KeyError("boom")


def n_plus_one(request: HttpRequest) -> JsonResponse:
    users = get_user_model().objects
    names = [users.filter(pk=i).values_list("username", flat=True).first() for i in range(12)]
    return JsonResponse({"n": len(names)})


urlpatterns = [
    path("test/crash/", crash),
    path("test/n-plus-one/", n_plus_one),
    path("", include("opsite.urls")),
]

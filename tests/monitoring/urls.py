"""Views that exist only for the monitoring tests: a crash, a slow page, an N+1 page."""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import include, path


def crash(request: HttpRequest) -> JsonResponse:
    raise KeyError("boom")


def not_found(request: HttpRequest) -> JsonResponse:
    raise Http404("no such thing")


def forbidden(request: HttpRequest) -> JsonResponse:
    raise PermissionDenied("not yours")


def n_plus_one(request: HttpRequest) -> JsonResponse:
    users = get_user_model().objects
    names = [users.filter(pk=i).values_list("username", flat=True).first() for i in range(12)]
    return JsonResponse({"n": len(names)})


urlpatterns = [
    path("test/crash/", crash),
    path("test/n-plus-one/", n_plus_one),
    path("test/not-found/", not_found),
    path("test/forbidden/", forbidden),
    path("", include("opsite.urls")),
]

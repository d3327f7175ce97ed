"""Views that exist only for the monitoring tests: a crash, a slow page, an N+1 page, the SQL
text the server received, a page of twenty queries."""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
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


def current_query(request: HttpRequest) -> JsonResponse:
    """The statement text as the database server received it (comments included)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_query()")
        return JsonResponse({"sql": cursor.fetchone()[0]})


def twenty_queries(request: HttpRequest) -> JsonResponse:
    users = get_user_model().objects
    return JsonResponse({"n": sum(users.filter(pk=i).count() for i in range(20))})


urlpatterns = [
    path("test/current-query/", current_query),
    path("test/twenty-queries/", twenty_queries),
    path("test/crash/", crash),
    path("test/n-plus-one/", n_plus_one),
    path("test/not-found/", not_found),
    path("test/forbidden/", forbidden),
    path("", include("opsite.urls")),
]

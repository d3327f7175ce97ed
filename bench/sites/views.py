from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse

FIELDS = ("id", "username", "email", "first_name", "last_name", "is_staff", "is_active", "date_joined", "last_login",
          "password")  # fmt: skip


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def twenty_queries(request: HttpRequest) -> JsonResponse:
    """Twenty different statements, as a page that reads what it shows (not an N+1)."""
    users = get_user_model().objects
    rows = 0
    for i in range(20):
        query = users.filter(pk=i).values_list(*FIELDS[: 1 + i % 10])
        rows += len(query.order_by("-pk") if i >= 10 else query)
    return JsonResponse({"rows": rows})

from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def twenty_queries(request: HttpRequest) -> JsonResponse:
    users = get_user_model().objects
    return JsonResponse({"n": sum(users.filter(pk=i).count() for i in range(20))})

"""A view for the replica tests: writes, then reads what the dashboard would read."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from monitoring.models import Heartbeat
from opsite.replicas import replica_reads


def write_then_read(request: HttpRequest) -> JsonResponse:
    with replica_reads():
        before = Heartbeat.objects.all().db
    if request.GET.get("write"):
        from django.utils import timezone

        Heartbeat.objects.update_or_create(name="replica-test", defaults={"at": timezone.now()})
    with replica_reads():
        after = Heartbeat.objects.all().db
    return JsonResponse({"before": before, "after": after})


urlpatterns = [path("test/replica/", write_then_read), path("", include("opsite.urls"))]

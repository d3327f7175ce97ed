"""A view for the replica tests: writes, then reads what the dashboard would read."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.utils import timezone

from common.replicas import replica_reads
from monitoring.models import Heartbeat


def write_then_read(request: HttpRequest) -> JsonResponse:
    with replica_reads():
        before = Heartbeat.objects.all().db
    if request.GET.get("write"):
        Heartbeat.objects.update_or_create(name="replica-test", defaults={"at": timezone.now()})
    with replica_reads():
        written = Heartbeat.objects.filter(name="replica-test")
        after, seen = written.db, written.exists()
    return JsonResponse({"before": before, "after": after, "seen": seen})


urlpatterns = [path("test/replica/", write_then_read), path("", include("opsite.urls"))]

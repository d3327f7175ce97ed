from django.urls import path

from monitoring import prometheus
from monitoring.dashboard import views as dashboard
from monitoring.health import views as health
from monitoring.requests import views as requests

urlpatterns = [
    path("health", health.health_summary, name="health"),
    path("health/live", health.health_live, name="health-live"),
    path("health/ready", health.health_ready, name="health-ready"),
    path("health/detailed", health.health_detailed, name="health-detailed"),
    path("health/dependencies", health.health_dependencies, name="health-dependencies"),
    path("health/stats", dashboard.health_stats, name="health-stats"),
    path("metrics", prometheus.metrics, name="metrics"),
    path("api/v1/metrics/frontend", requests.frontend_metrics, name="frontend-metrics"),
    path("api/v1/errors/frontend", requests.frontend_errors, name="frontend-errors"),
    path("ops/", dashboard.ops_dashboard, name="ops-dashboard"),
    path("ops/restaurants/<slug:slug>/", dashboard.ops_restaurant, name="ops-restaurant"),
    path("ops/api/series", dashboard.ops_series, name="ops-series"),
    path("ops/api/tables", dashboard.ops_tables, name="ops-tables"),
    path("ops/api/live", dashboard.ops_live, name="ops-live"),
    path("ops/api/slow-requests", dashboard.ops_slow_requests, name="ops-slow-requests"),
]

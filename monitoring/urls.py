from django.urls import path

from monitoring import views

urlpatterns = [
    path("health", views.health_summary, name="health"),
    path("health/live", views.health_live, name="health-live"),
    path("health/ready", views.health_ready, name="health-ready"),
    path("health/detailed", views.health_detailed, name="health-detailed"),
    path("health/dependencies", views.health_dependencies, name="health-dependencies"),
    path("health/stats", views.health_stats, name="health-stats"),
    path("metrics", views.metrics, name="metrics"),
    path("api/v1/metrics/frontend", views.frontend_metrics, name="frontend-metrics"),
    path("api/v1/errors/frontend", views.frontend_errors, name="frontend-errors"),
    path("ops/", views.ops_dashboard, name="ops-dashboard"),
    path("ops/api/series", views.ops_series, name="ops-series"),
    path("ops/api/tables", views.ops_tables, name="ops-tables"),
    path("ops/api/live", views.ops_live, name="ops-live"),
]

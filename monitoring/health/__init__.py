"""Health: the check registry and its probes, the /health endpoints, heartbeats of scheduled
jobs, Celery's queue and workers."""

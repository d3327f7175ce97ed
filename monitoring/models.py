"""The monitoring app's models, each defined with its subsystem (health, requests, dashboard,
alerts, ledger) and gathered here, where Django looks for an app's models. Tables and
migrations are the app's, as before."""

from monitoring.alerts.models import Alert, AlertRule, MuteWindow, Notification, NotificationChannel, Severity, Silence
from monitoring.health.models import Heartbeat
from monitoring.history.models import CLUSTER, MetricSnapshot, Resolution, RestaurantSnapshot
from monitoring.ledger.models import Deployment, TaskRun
from monitoring.nodes.models import NodeReport
from monitoring.requests.models import FrontendErrorGroup, Profile, ProfileArm, QueryFingerprint, SlowRequest

__all__ = [
    "CLUSTER",
    "Alert",
    "AlertRule",
    "Deployment",
    "FrontendErrorGroup",
    "Heartbeat",
    "MetricSnapshot",
    "MuteWindow",
    "NodeReport",
    "Notification",
    "NotificationChannel",
    "Profile",
    "ProfileArm",
    "QueryFingerprint",
    "Resolution",
    "RestaurantSnapshot",
    "Severity",
    "Silence",
    "SlowRequest",
    "TaskRun",
]

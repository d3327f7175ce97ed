"""What the alerts subsystem announces: an alert fired or resolved (the dashboard pushes it to
open pages). Sent with ``frame``, the alert's notification payload and its ``type``."""

from django.dispatch import Signal

alert_changed = Signal()

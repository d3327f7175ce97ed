"""What the backups app announces to whoever listens (the dashboard pushes it to open pages);
the app itself knows no listener."""

from django.dispatch import Signal

# Sent after a backup run ends, whatever its outcome, with ``frame``: a dict of the backup's
# id, status, size_bytes and (shortened) error, ready to be shown.
backup_finished = Signal()

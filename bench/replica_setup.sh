#!/usr/bin/env bash
# A real streaming replica of the local PostgreSQL on another port, and opsite's routing and
# lag check exercised against it; the replica is stopped and removed at the end.
# Run as root on a machine like this one (Debian's PostgreSQL, trust auth on 127.0.0.1):
#   bash bench/replica_setup.sh
# It adds "host replication all 127.0.0.1/32 trust" to pg_hba.conf if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PGVER=$(ls /etc/postgresql | head -1)
BIN=/usr/lib/postgresql/$PGVER/bin
HBA=/etc/postgresql/$PGVER/main/pg_hba.conf
DIR=${REPLICA_DIR:-/var/tmp/opsite-replica}
PORT=${REPLICA_PORT:-5433}
DB=opsite_replica_demo
PRIMARY="postgres://postgres@127.0.0.1:5432"
REPLICA="postgres://postgres@127.0.0.1:$PORT"

if ! grep -q "^host replication all 127.0.0.1/32 trust" "$HBA"; then
  echo "host replication all 127.0.0.1/32 trust" >> "$HBA"
  psql "$PRIMARY/postgres" -qAtc "SELECT pg_reload_conf()" >/dev/null
fi
psql "$PRIMARY/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
DATABASE_URL="$PRIMARY/$DB" .venv/bin/python manage.py migrate -v0

stop() { su postgres -c "$BIN/pg_ctl -D $DIR stop -m fast" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap stop EXIT
rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres "$DIR" && chmod 700 "$DIR"
su postgres -c "$BIN/pg_basebackup -h 127.0.0.1 -U postgres -D $DIR -R -X stream -c fast"
cat > "$DIR/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
hot_standby = on
CONF
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > "$DIR/pg_hba.conf"
chown postgres "$DIR/postgresql.conf" "$DIR/pg_hba.conf"
su postgres -c "$BIN/pg_ctl -D $DIR -l $DIR/server.log start -w" >/dev/null
echo "replica in recovery: $(psql "$REPLICA/postgres" -Atc 'SELECT pg_is_in_recovery()')"

DATABASE_URL="$PRIMARY/$DB" DATABASE_REPLICA_URL="$REPLICA/$DB" OPSITE_REPLICA_CHECK_S=0 \
  .venv/bin/python manage.py shell -c '
import time
from django.utils import timezone
from monitoring.models import Heartbeat
from common.replicas import monitor, replica_reads
state = monitor.check("replica0")
print(f"replica0 usable: {state.ok}, lag {state.lag_s} s {state.detail}")
with replica_reads():
    print("dashboard reads go to:", Heartbeat.objects.all().db)
Heartbeat.objects.create(name="streamed", at=timezone.now())
deadline = time.monotonic() + 10
while True:
    with replica_reads():
        seen = Heartbeat.objects.filter(name="streamed").exists()
    if seen or time.monotonic() > deadline:
        break
    time.sleep(0.05)
print(f"a row written on the primary is read from the replica: {seen}")
ok = state.ok and seen
print("replica check:", "PASS" if ok else "FAIL")
raise SystemExit(0 if ok else 1)
'
psql "$PRIMARY/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"

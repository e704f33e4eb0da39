#!/usr/bin/env bash
# Make sure the local PostgreSQL answers on 127.0.0.1:5432 (the Postgres half of the tests needs
# it). Machines of this kind start it before a session; this only starts it when it is down.
set -u
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
        sleep 1
    done
fi
echo "warning: PostgreSQL is not answering on 127.0.0.1:5432; its tests will skip (or fail under CI=true)" >&2

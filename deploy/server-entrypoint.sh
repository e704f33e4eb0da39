#!/usr/bin/env sh
# The server image's entry point: apply the migrations, then serve. Two replicas starting together
# take turns on the migration (an advisory lock on Postgres, the write lock on SQLite). On
# Kubernetes a Job migrates before the rollout and the pods set MORPHML_SKIP_MIGRATE=true.
set -eu
if [ "${MORPHML_SKIP_MIGRATE:-false}" != "true" ]; then
    morphml-server migrate
fi
exec morphml-server serve --host "${MORPHML_HOST:-0.0.0.0}" --port "${MORPHML_PORT:-8000}" "$@"

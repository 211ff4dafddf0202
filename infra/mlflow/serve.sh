#!/usr/bin/env bash
# A shared MLflow tracking server for the pipeline (one per team). Everything is an environment
# variable with a safe default; see infra/README.md.
#
#   infra/mlflow/serve.sh                                   # http://127.0.0.1:5000, SQLite, local artifacts
#   MLFLOW_HOST=0.0.0.0 MLFLOW_ALLOWED_HOSTS=mlflow.internal:5000 MLFLOW_AUTH=1 ... infra/mlflow/serve.sh  # exposed
#   (a host other than 127.0.0.1/localhost/::1 is refused without MLFLOW_AUTH=1; the data dir is made 0700)
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:PW@db:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=s3://team-bucket/mlflow infra/mlflow/serve.sh             # PostgreSQL + S3
#   MLFLOW_AUTH=1 MLFLOW_AUTH_ADMIN_PASSWORD=... MLFLOW_FLASK_SERVER_SECRET_KEY=... infra/mlflow/serve.sh
#
# Then, wherever the pipeline runs: export MLFLOW_TRACKING_URI=http://<host>:<port>
# (and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD with MLFLOW_AUTH=1).
set -euo pipefail

HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
DATA_DIR="${MLFLOW_DATA_DIR:-$PWD/mlflow-server}"
BACKEND="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$DATA_DIR/mlflow.db}"
# --serve-artifacts: clients upload and download artifacts through this server, so Ray nodes need
# no credentials or mount of the artifact store; only the server reaches it.
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-$DATA_DIR/artifacts}"
WORKERS="${MLFLOW_WORKERS:-2}"

fail() { echo "infra/mlflow/serve.sh: $*" >&2; exit 2; }

# A server reachable from other machines must check passwords: without MLflow's auth app anyone who
# reaches it can read, change and delete every run (and, through the artifact proxy, the store).
case "$HOST" in
  127.0.0.1|localhost|::1) ALLOWED="${MLFLOW_ALLOWED_HOSTS:-}" ;;
  *) [ "${MLFLOW_AUTH:-0}" = 1 ] \
       || fail "MLFLOW_HOST=$HOST exposes the server without authentication: set MLFLOW_AUTH=1 (allowed without it: 127.0.0.1, localhost, ::1)"
     ALLOWED="${MLFLOW_ALLOWED_HOSTS:-}"
     [ -n "$ALLOWED" ] \
       || fail "MLFLOW_HOST=$HOST exposes the server: set MLFLOW_ALLOWED_HOSTS to the host:port names clients use (e.g. mlflow.internal:$PORT)" ;;
esac

# The data directory holds the run database, the auth database and its config: this user's only.
(umask 077; mkdir -p "$DATA_DIR")
chmod 700 "$DATA_DIR"
case "$ARTIFACTS" in *://*) ;; *) mkdir -p "$ARTIFACTS" ;; esac

# The backend URI may hold a database password: it goes to mlflow through the environment (which
# `mlflow server` reads), not the command line that `ps` shows, and is printed with the password masked.
export MLFLOW_BACKEND_STORE_URI="$BACKEND"
args=(server --host "$HOST" --port "$PORT" --workers "$WORKERS"
      --artifacts-destination "$ARTIFACTS" --serve-artifacts)
[ -n "$ALLOWED" ] && args+=(--allowed-hosts "$ALLOWED")

if [ "${MLFLOW_AUTH:-0}" = "1" ]; then
  # MLflow's basic-auth app: users and permissions in their own database; the admin account is
  # created on first start from MLFLOW_AUTH_ADMIN_PASSWORD.
  [ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ] || [ -f "$DATA_DIR/basic_auth.db" ] \
    || fail "MLFLOW_AUTH=1: set MLFLOW_AUTH_ADMIN_PASSWORD for the first start (admin user 'admin')"
  [ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ] || fail "MLFLOW_AUTH=1: set MLFLOW_FLASK_SERVER_SECRET_KEY (any long random string)"
  config="$DATA_DIR/basic_auth.ini"
  (umask 077; : > "$config")  # readable by this user only: it may name the auth database
  cat > "$config" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$DATA_DIR/basic_auth.db}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Each request's password check is a deliberate slow hash: cache a good check for a minute, or
# every metric batch a training run logs pays for it again (measured: a 2-worker test job took 71 s
# without the cache, 56 s with it). The price: a revoked password keeps working for up to this long;
# MLFLOW_AUTH_CACHE_TTL=0 turns the cache off.
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL:-60}
INI
  export MLFLOW_AUTH_CONFIG_PATH="$config"
  args+=(--app-name basic-auth)
fi

masked_backend="$(printf '%s' "$BACKEND" | sed -E 's#://([^:/@]*):[^/]*@#://\1:***@#')"
echo "MLflow tracking server: http://$HOST:$PORT (backend $masked_backend, artifacts $ARTIFACTS${ALLOWED:+, allowed hosts $ALLOWED}$([ "${MLFLOW_AUTH:-0}" = 1 ] && echo ", basic auth"))" >&2
exec "${MLFLOW_BIN:-mlflow}" "${args[@]}"

#!/usr/bin/env bash
# MLflow tracking server for the sweeps. Loopback only by default: the sweep driver runs on the same host and is
# the only writer; reach it from elsewhere through an SSH tunnel (ssh -L 5000:127.0.0.1:5000 HOST).
# Needs: `mlflow` on PATH (the project's `sweep` extra).
#
# Settings (environment):
#   RADIO_MLFLOW_HOST          bind address                      (default 127.0.0.1; 0.0.0.0 exposes it: add auth)
#   RADIO_MLFLOW_PORT          port                              (default 5000)
#   RADIO_MLFLOW_BACKEND_URI   run store: sqlite:///ABS/PATH.db or a DB URI, e.g. postgresql://user@db/mlflow
#                              (default sqlite:///$PWD/mlflow.db)
#   RADIO_MLFLOW_ARTIFACTS     artifact root served by the server (default $PWD/mlartifacts)
#   RADIO_MLFLOW_WORKERS       server worker processes            (default 2)
#   RADIO_MLFLOW_PIDFILE       write this script's PID there. Start the script as the leader of its own process
#                              group (`setsid -f bash ops/mlflow_server.sh ...`) so that the PID is also the process
#                              group of the server and its workers: stop them all with `kill -- -"$(cat PIDFILE)"`.
#   RADIO_MLFLOW_STOP_WITH_RAY HOST:PORT of a Ray head (GCS). The server stops by itself once that port stops
#                              accepting connections (checked every 10 s): `ray down` runs `ray stop` on the head,
#                              so it also ends the MLflow server that cluster*.yaml started there.
#
# Clients then use --tracking-uri http://127.0.0.1:5000 (or MLFLOW_TRACKING_URI).
set -euo pipefail

host="${RADIO_MLFLOW_HOST:-127.0.0.1}"
port="${RADIO_MLFLOW_PORT:-5000}"
backend="${RADIO_MLFLOW_BACKEND_URI:-sqlite:///$PWD/mlflow.db}"
artifacts="${RADIO_MLFLOW_ARTIFACTS:-$PWD/mlartifacts}"
workers="${RADIO_MLFLOW_WORKERS:-2}"
pidfile="${RADIO_MLFLOW_PIDFILE:-}"
ray_gcs="${RADIO_MLFLOW_STOP_WITH_RAY:-}"

mkdir -p "$artifacts"
if [ -n "$pidfile" ]; then
  if [ "$(ps -o pgid= -p $$ | tr -d ' ')" != "$$" ]; then
    echo "mlflow_server.sh: RADIO_MLFLOW_PIDFILE needs its own process group: start it with setsid -f" >&2
    exit 2
  fi
  echo "$$" > "$pidfile"
fi
server=(mlflow server --host "$host" --port "$port" --workers "$workers" --backend-store-uri "$backend"
  --artifacts-destination "$artifacts" --serve-artifacts "$@")
if [ -z "$ray_gcs" ]; then
  exec "${server[@]}"
fi

gcs_up() { (: < "/dev/tcp/${ray_gcs%:*}/${ray_gcs##*:}") 2> /dev/null; }
if ! gcs_up; then
  echo "mlflow_server.sh: no Ray head answers at $ray_gcs (RADIO_MLFLOW_STOP_WITH_RAY): not starting" >&2
  exit 1
fi
"${server[@]}" &
server_pid=$!
trap 'kill "$server_pid" 2> /dev/null || true' EXIT
while kill -0 "$server_pid" 2> /dev/null && gcs_up; do
  sleep 10
done
if kill -0 "$server_pid" 2> /dev/null; then
  echo "mlflow_server.sh: the Ray head at $ray_gcs stopped: stopping the MLflow server" >&2
fi
kill "$server_pid" 2> /dev/null || true
wait "$server_pid" || true
if [ "$(ps -o pgid= -p $$ | tr -d ' ')" = "$$" ]; then
  trap - EXIT
  kill -- "-$$" 2> /dev/null || true  # what the server left in this script's process group (job runners)
fi

#!/usr/bin/env bash
# MLflow tracking server for the sweeps. Loopback only by default: the sweep driver runs on the same host and is
# the only writer; reach it from elsewhere through an SSH tunnel (ssh -L 5000:127.0.0.1:5000 HOST).
#
# Settings (environment):
#   RADIO_MLFLOW_HOST          bind address                      (default 127.0.0.1; 0.0.0.0 exposes it: add auth)
#   RADIO_MLFLOW_PORT          port                              (default 5000)
#   RADIO_MLFLOW_BACKEND_URI   run store: sqlite:///ABS/PATH.db or a DB URI, e.g. postgresql://user@db/mlflow
#                              (default sqlite:///$PWD/mlflow.db)
#   RADIO_MLFLOW_ARTIFACTS     artifact root served by the server (default $PWD/mlartifacts)
#   RADIO_MLFLOW_WORKERS       server worker processes            (default 2)
#
# Clients then use --tracking-uri http://127.0.0.1:5000 (or MLFLOW_TRACKING_URI).
set -euo pipefail

host="${RADIO_MLFLOW_HOST:-127.0.0.1}"
port="${RADIO_MLFLOW_PORT:-5000}"
backend="${RADIO_MLFLOW_BACKEND_URI:-sqlite:///$PWD/mlflow.db}"
artifacts="${RADIO_MLFLOW_ARTIFACTS:-$PWD/mlartifacts}"
workers="${RADIO_MLFLOW_WORKERS:-2}"

mkdir -p "$artifacts"
exec mlflow server \
  --host "$host" \
  --port "$port" \
  --workers "$workers" \
  --backend-store-uri "$backend" \
  --artifacts-destination "$artifacts" \
  --serve-artifacts \
  "$@"

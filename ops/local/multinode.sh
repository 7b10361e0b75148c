#!/usr/bin/env bash
# multinode.sh: a 3-node Ray cluster on this machine (a head and 2 worker nodes, 1 CPU each, token auth with a
# generated token), the smoke sweep joined to it with --ray-address, the MLflow record checked (every trial once),
# the key looked for in every file the run wrote, then everything stopped by temp dir (never a bare `ray stop`).
# Needs: the project installed with the `sweep` and `train` extras, its environment active (python, ray on PATH);
# about 3 GB of memory. No root, no network. Takes about 3 minutes on 2 cores.
#   ops/local/multinode.sh            # RADIO_HARNESS_KEEP=1 keeps the temp dir for inspection
set -euo pipefail
HARNESS=multinode
# shellcheck source=ops/local/lib.sh
source "$(dirname "$0")/lib.sh"
repo="$(repo_root)"
work="$(mktemp -d /tmp/radio-mn.XXXXXX)"  # short: Ray's socket paths live under it
raytmp="$work/ray"
cleanup() {
  stop_pids_naming "$work"
  if [ -z "${RADIO_HARNESS_KEEP:-}" ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$work/ray_auth_token"
new_secret "$RAY_AUTH_TOKEN_PATH"
key_file="$work/watermark.key"
new_secret "$key_file"
port="$(free_port)"
address="127.0.0.1:$port"

say "head on $address, temp dir $raytmp"
nice -n 5 ray start --head --port="$port" --num-cpus=1 --temp-dir="$raytmp" --include-dashboard=false \
  --disable-usage-stats > "$work/head.log" 2>&1 || { cat "$work/head.log"; die "ray start --head"; }
for i in 1 2; do
  nice -n 5 ray start --address="$address" --num-cpus=1 --temp-dir="$raytmp" --disable-usage-stats \
    > "$work/worker$i.log" 2>&1 || { cat "$work/worker$i.log"; die "ray start (worker $i)"; }
done
deadline=$((SECONDS + 60))
while :; do  # a node that `ray start` returned for registers a moment later
  nodes="$({ ray status --address "$address" 2> /dev/null || true; } |
    awk '/^Active:/ {on = 1; next} /^(Pending|Recent)/ {on = 0} on && / node_/ {n++} END {print n + 0}')"
  [ "$nodes" -lt 3 ] || break
  [ "$SECONDS" -lt "$deadline" ] || die "expected 3 Ray nodes, ray status shows $nodes after 60 s"
  sleep 2
done
say "3 nodes up"

args=(--preset smoke --ray-address "$address" --storage-path "$work/storage" --cache-root "$work/cache"
  --tracking-uri "sqlite:///$work/mlflow.db" --key-file "$key_file")
trials="$(smoke_trials "${args[@]}")"
say "sweep: python sweeps/ablation.py ${args[*]} ($trials trials)"
cd "$repo"
start=$SECONDS
nice -n 5 python -u sweeps/ablation.py "${args[@]}" > "$work/sweep.log" 2>&1 || {
  tail -n 60 "$work/sweep.log"
  die "the sweep failed (log above)"
}
say "sweep finished in $((SECONDS - start)) s"
check_mlflow --tracking-uri "sqlite:///$work/mlflow.db" --trials "$trials"
check_key_absent "$key_file" "$work"
say "passed"

#!/usr/bin/env bash
# slurm.sh: a single-node SLURM cluster on this machine (munged, slurmctld, and slurmd in its own PID namespace
# so that `ray symmetric-run`, which ends with `ray stop`, cannot touch any other Ray process of the host); the
# shipped ops/slurm_sweep.sbatch submitted as is with the smoke preset on CPUs; the MLflow record checked; the
# same command again, which must resume with nothing retrained; then ops/slurm_sweep_multitenant.sbatch with the
# same arguments (resumes too); the replication smoke sweep through ops/slurm_sweep.sbatch once; everything
# stopped by PID and the temp dir removed.
# Needs: root; Debian packages slurmd slurmctld slurm-client munge (installed with apt-get when missing);
# util-linux `unshare`; the project installed with the `sweep` and `train` extras, its environment active (the
# job inherits it). Takes about 4 minutes on 2 cores.
#   sudo ops/local/slurm.sh            # RADIO_HARNESS_KEEP=1 keeps the temp dir for inspection
set -euo pipefail
HARNESS=slurm
# shellcheck source=ops/local/lib.sh
source "$(dirname "$0")/lib.sh"
repo="$(repo_root)"
[ "$(id -u)" -eq 0 ] || die "needs root (munged, slurmctld and slurmd run as root here)"
if ! command -v slurmd > /dev/null || ! command -v slurmctld > /dev/null || ! command -v sbatch > /dev/null ||
  ! command -v munged > /dev/null; then
  say "apt-get install slurmd slurmctld slurm-client munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmd slurmctld slurm-client munge > /dev/null
fi

work="$(mktemp -d /tmp/radio-slurm.XXXXXX)"
pids=()
cleanup() {
  local pid
  if [ -n "${SLURM_CONF:-}" ]; then scancel --user=root --full 2> /dev/null || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 15); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
    kill -9 "$pid" 2> /dev/null || true
  done
  wait 2> /dev/null || true
  stop_pids_naming "$work"
  if [ -z "${RADIO_HARNESS_KEEP:-}" ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT
mkdir -p "$work/state" "$work/spool" "$work/munge" "$work/shared"
chmod 700 "$work/munge"

# munged: its own key, socket, PID and log files under the temp dir.
(umask 077 && dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none)
munged --foreground --force --socket="$work/munge/munge.socket" --key-file="$work/munge/munge.key" \
  --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" \
  2> /dev/null &
pids+=($!)

node="$(hostname)"
export SLURM_CONF="$work/slurm.conf"
cat > "$SLURM_CONF" << CONF
ClusterName=radio-harness
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
for _ in $(seq 20); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.5; done
[ -S "$work/munge/munge.socket" ] || die "munged did not start"
slurmctld -D -c -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
# slurmd is PID 1 of a new PID namespace: killing it at the end kills every process of every job.
unshare --pid --fork --mount-proc slurmd -D -f "$SLURM_CONF" -N "$node" > "$work/slurmd.out" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 60))
until [ "$(sinfo -h -n "$node" -o %T 2> /dev/null)" = idle ]; do
  [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$work"/slurm*.log; die "the SLURM node is not idle after 60 s"; }
  sleep 1
done
say "SLURM up: node $node idle ($(nproc) CPUs), conf $SLURM_CONF"

# Settings of the shipped scripts (no edits to them): everything under the temp dir, Ray's session dirs included
# (RAY_TMPDIR for symmetric-run, RADIO_RAY_TMP for the multi-tenant script), and a free GCS port.
export RADIO_SHARED="$work/shared" RAY_TMPDIR="$work/rt" RADIO_RAY_TMP="$work/mt" RAY_PORT
RAY_PORT="$(free_port)"
mkdir -p "$RAY_TMPDIR"
cd "$repo"
submit=(sbatch --wait --parsable --nodes=1 --cpus-per-task="$(nproc)" --output="$work/job-%j.log")
new_secret "$work/dry-run.key"
trials="$(smoke_trials --preset smoke --key-file "$work/dry-run.key")"
mlflow_uri="sqlite:///$RADIO_SHARED/mlflow.db"

run_job() {  # run_job SCRIPT [SWEEP.py]: submit it with the smoke preset, wait, print the wall time
  local start=$SECONDS job
  say "RADIO_SHARED=$RADIO_SHARED ${submit[*]} $* --preset smoke"
  job="$(timeout 900 "${submit[@]}" "$@" --preset smoke)" || {
    tail -n 60 "$work"/job-*.log
    die "job of $1 failed"
  }
  say "job $job ($1) done in $((SECONDS - start)) s"
}

run_job ops/slurm_sweep.sbatch
check_mlflow --tracking-uri "$mlflow_uri" --trials "$trials" --save "$work/first.json"
for secret in "$RADIO_SHARED/radio-secrets/watermark.key" "$RADIO_SHARED/radio-secrets/ray_auth_token"; do
  [ "$(stat -c %a "$secret")" = 600 ] || die "$secret has mode $(stat -c %a "$secret"), not 600"
done
say "key file and Ray token are mode 600"

run_job ops/slurm_sweep.sbatch
check_mlflow --tracking-uri "$mlflow_uri" --trials "$trials" --unchanged-since "$work/first.json"

run_job ops/slurm_sweep_multitenant.sbatch
check_mlflow --tracking-uri "$mlflow_uri" --trials "$trials" --unchanged-since "$work/first.json"
check_key_absent "$RADIO_SHARED/radio-secrets/watermark.key" "$work"

# The other audit through the same script: the replication smoke sweep, recorded in the same MLflow store.
run_job ops/slurm_sweep.sbatch sweeps/replication.py
check_mlflow --tracking-uri "$mlflow_uri" --experiment replication-smoke --trials 2
say "passed"

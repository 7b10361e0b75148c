# shellcheck shell=bash
# Helpers sourced by the ops/local/*.sh harness scripts (setup only: no sweep logic lives here).

# The repository root (the scripts run the project's files as shipped from there).
repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

say() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${HARNESS:-harness}" "$*"; }
die() {
  say "FAILED: $*" >&2
  exit 1
}

# A TCP port free on 127.0.0.1 right now.
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A random secret in a new file, mode 0600 from the start.
new_secret() { (umask 077 && python -c 'import secrets; print(secrets.token_hex(32))' > "$1"); }

# The processes whose command line or environment names DIR, and all their descendants; this shell excluded.
# Ray's own processes name their session dir (under --temp-dir) on their command line (gcs_server, raylet) or in
# their environment; those it renames (ray::DashboardAgent, ray::IDLE, ...) are the raylet's children. Zombies
# are skipped.
pids_naming() {
  local dir="$1" proc pid roots=""
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    if [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ]; then continue; fi
    if grep -qsF -- "$dir" "$proc/cmdline" "$proc/environ"; then roots="$roots $pid"; fi
  done
  [ -n "$roots" ] || return 0
  ps -eo pid=,ppid=,stat= | awk -v roots="$roots" -v self="$$" '
    { parent[$1] = $2; state[$1] = $3 }
    END {
      n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1
      do { grown = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grown = 1 } } while (grown)
      for (p in keep) if (p != self && (p in state) && state[p] !~ /^Z/) print p
    }'
}

# Stop what pids_naming DIR finds: SIGTERM, then SIGKILL what is left after 15 s.
stop_pids_naming() {
  local dir="$1" pids
  pids="$(pids_naming "$dir")"
  [ -n "$pids" ] || return 0
  say "stopping $(echo "$pids" | wc -w) process(es) started under $dir"
  # shellcheck disable=SC2086
  kill $pids 2> /dev/null || true
  for _ in $(seq 15); do
    pids="$(pids_naming "$dir")"
    [ -n "$pids" ] || return 0
    sleep 1
  done
  say "SIGKILL: $pids"
  # shellcheck disable=SC2086
  kill -9 $pids 2> /dev/null || true
}

# Number of trials of the smoke sweep, from its --dry-run ("sweep NAME: id ID, N trial(s) ...").
smoke_trials() {
  local n
  n="$(nice -n 5 python "$(repo_root)/sweeps/ablation.py" --dry-run "$@" 2> /dev/null |
    sed -n 's/^sweep [^:]*: id [^,]*, \([0-9][0-9]*\) trial(s).*/\1/p' | head -n 1)"
  [ -n "$n" ] || die "could not read the trial count from sweeps/ablation.py --dry-run $*"
  echo "$n"
}

check_mlflow() { python "$(repo_root)/ops/local/check_mlflow.py" "$@"; }

# Fail if the watermark key (read from KEYFILE, never put on a command line) appears in any file under DIRS.
check_key_absent() {
  local keyfile="$1" hits="" file
  shift
  while IFS= read -r file; do
    [ "$file" -ef "$keyfile" ] || hits="$hits $file"
  done < <(grep -rlF -f "$keyfile" -- "$@" 2> /dev/null || true)
  [ -z "$hits" ] || die "the watermark key appears in:$hits"
  say "key secrecy: the key appears in no file under $*"
}

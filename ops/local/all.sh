#!/usr/bin/env bash
# all.sh: the three launch-path harnesses one after the other (multinode.sh, slurm.sh, rayup.sh), each phase's
# wall time printed, a summary at the end; exits 1 if any phase failed (the others still run).
# Needs: what each script needs (root, Debian packages reachable or installed, the project's environment
# active, ports 22/5000/6379 free). Takes about 15 minutes on 2 cores. `.ci/run` calls it after the tests.
#   sudo ops/local/all.sh              # RADIO_HARNESS_PHASES="multinode slurm" runs a subset
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
phases="${RADIO_HARNESS_PHASES:-multinode slurm rayup}"
summary=()
failed=0
total_start=$SECONDS
for phase in $phases; do
  echo "=== ops/local/$phase.sh"
  start=$SECONDS
  if bash "$here/$phase.sh"; then result=passed; else result=FAILED && failed=1; fi
  summary+=("$(printf '%-10s %-7s %4d s' "$phase" "$result" $((SECONDS - start)))")
done
echo "=== cluster harness: wall time per phase"
printf '  %s\n' "${summary[@]}"
echo "  total             $((SECONDS - total_start)) s"
exit "$failed"

#!/usr/bin/env bash
# rayup.sh: `ray up` of the shipped cluster-onprem.yaml against this machine as its only node: sshd on
# 127.0.0.1:22 for a user created here (RADIO_HARNESS_USER, default `radio`) with a generated key, /mnt/shared a
# bind mount of a temp dir, and a copy of the config whose only edits are the addresses (head_ip 127.0.0.1, no
# workers), the SSH user and the key. Then `ray up`, the README's head command through `ray exec` (smoke preset),
# the MLflow record checked through the head's MLflow server, the key looked for in every file the run wrote,
# `ray down` (which must also stop that MLflow server), and everything stopped by PID, unmounted and removed.
# Needs: root; Debian packages openssh-server openssh-client rsync (installed with apt-get when missing); ports
# 22, 5000 and 6379 free on 127.0.0.1 and /mnt/shared not a mount point; the project's environment active here
# (its site-packages, bind-mounted read-only under the temp dir because CI's interpreter lives in root's 0700 home,
# are reused by the node's venv, made with Debian's python3, through a .pth file; nothing is installed into it). Takes about 4 minutes on 2 cores.
#   sudo ops/local/rayup.sh            # RADIO_HARNESS_KEEP=1 keeps the temp dir (not the user) for inspection
set -euo pipefail
HARNESS=rayup
# shellcheck source=ops/local/lib.sh
source "$(dirname "$0")/lib.sh"
repo="$(repo_root)"
[ "$(id -u)" -eq 0 ] || die "needs root (sshd, a user, a bind mount)"
user="${RADIO_HARNESS_USER:-radio}"
shared=/mnt/shared
if ! command -v sshd > /dev/null && [ ! -x /usr/sbin/sshd ] || ! command -v rsync > /dev/null; then
  say "apt-get install openssh-server openssh-client rsync"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client rsync > /dev/null
fi
for port in 22 5000 6379; do
  if (: < "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then die "127.0.0.1:$port is in use"; fi
done
! mountpoint -q "$shared" || die "$shared is already a mount point"
! id "$user" > /dev/null 2>&1 || die "user $user exists already: set RADIO_HARNESS_USER to a new name"
site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# The console scripts themselves, not what `command -v` finds: under pyenv (as on CI) that is a bash shim.
scripts="$(python -c 'import sysconfig; print(sysconfig.get_paths()["scripts"])')"
pyver="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$pyver" ] ||
  die "Debian's python3 is not Python $pyver like the project's environment"

work="$(mktemp -d /tmp/radio-rayup.XXXXXX)"
chmod 755 "$work"
sshd_pid=""
created_user=""
mounted=""
site_mounted=""
made_shared=""
cleanup() {
  local pids
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2> /dev/null || true; fi
  if [ -n "$created_user" ]; then
    pids="$(pgrep -u "$user" || true)"
    if [ -n "$pids" ]; then
      say "stopping $(echo "$pids" | wc -w) process(es) of user $user:"
      # shellcheck disable=SC2086
      ps -o pid=,args= -p "$(echo $pids | tr ' ' ,)" | cut -c1-150 | sed 's/^/  /' || true
      # shellcheck disable=SC2086
      kill $pids 2> /dev/null || true
      sleep 5
      pids="$(pgrep -u "$user" || true)"
      # shellcheck disable=SC2086
      if [ -n "$pids" ]; then kill -9 $pids 2> /dev/null || true; fi
      sleep 1
    fi
  fi
  stop_pids_naming "$work"
  if [ -n "$mounted" ]; then umount "$shared" || umount -l "$shared" || true; fi
  if [ -n "$site_mounted" ]; then umount "$work/site-packages" || umount -l "$work/site-packages" || true; fi
  if [ -n "$made_shared" ]; then rmdir "$shared" 2> /dev/null || true; fi
  if [ -n "$created_user" ]; then userdel -r "$user" 2> /dev/null || userdel "$user" || true; fi
  if [ -z "${RADIO_HARNESS_KEEP:-}" ]; then rm -rf --one-file-system "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

# The node: a user with a key, a venv over the project's site-packages, a shared file system at /mnt/shared.
useradd -m -s /bin/bash -p "*" "$user"  # "*": no password, but not locked (sshd refuses locked accounts)
created_user=1
home="$(getent passwd "$user" | cut -d: -f6)"
ssh-keygen -q -t ed25519 -N "" -C radio-harness -f "$work/id_ed25519"
install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
install -m 600 -o "$user" -g "$user" "$work/id_ed25519.pub" "$home/.ssh/authorized_keys"
# The project's site-packages may sit where the node's user cannot reach (CI's pyenv under root's 0700 home):
# the node sees it through a read-only bind mount under the temp dir instead. The name must contain
# "site-packages": dill (datasets' fingerprints) pickles modules outside such paths by value, and fails on pyarrow.
mkdir -p "$work/site-packages"
mount --bind "$site" "$work/site-packages"
site_mounted=1
mount -o remount,bind,ro "$work/site-packages"
su - "$user" -c "test -r '$work/site-packages/ray/__init__.py'" || die "user $user cannot read $site through $work/site-packages"
su - "$user" -c "python3 -m venv --without-pip ~/venv && echo '$work/site-packages' > \"\$(~/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/radio-harness-base.pth\""
for tool in ray mlflow; do  # console scripts of the project's environment, run by the node's interpreter
  head -1 "$scripts/$tool" | grep -q python || die "$scripts/$tool is not a Python console script"
  sed "1s|.*|#!$home/venv/bin/python|" "$scripts/$tool" > "$home/venv/bin/$tool"
  chmod 755 "$home/venv/bin/$tool"
  chown "$user:" "$home/venv/bin/$tool"
done
# The node's login environment: its venv first on PATH, Ray's temp dir in its home (not the host's /tmp/ray).
sed -i "1i export PATH=\"\$HOME/venv/bin:\$PATH\" RAY_TMPDIR=\"\$HOME/rt\"" "$home/.bashrc"
su - "$user" -c 'mkdir -p ~/rt'
if [ ! -d "$shared" ]; then mkdir -p "$shared" && made_shared=1; fi
mkdir -p "$work/shared"
chown "$user:" "$work/shared"
mount --bind "$work/shared" "$shared"
mounted=1

mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N "" -f "$work/ssh_host_ed25519_key"
cat > "$work/sshd_config" << CONF
ListenAddress 127.0.0.1:22
HostKey $work/ssh_host_ed25519_key
PidFile $work/sshd.pid
AllowUsers $user
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
CONF
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
sshd_pid=$!
for _ in $(seq 20); do (: < /dev/tcp/127.0.0.1/22) 2> /dev/null && break; sleep 0.5; done
ssh -q -i "$work/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
  "$user@127.0.0.1" true || { cat "$work/sshd.log"; die "ssh $user@127.0.0.1 does not work"; }
say "node ready: ssh $user@127.0.0.1, $shared bind-mounted from $work/shared"

# The launcher's side: its own HOME (~/.ray/auth_token, generated 0600) and RAY_TMPDIR (cluster state).
export HOME="$work/client" RAY_TMPDIR="$work/client/rt"
mkdir -p "$RAY_TMPDIR"
(umask 077 && ray get-auth-token --generate > /dev/null 2>&1)
[ "$(stat -c %a "$HOME/.ray/auth_token")" = 600 ] || die "the generated Ray token is not mode 600"
config="$work/cluster-onprem.yaml"
python - "$repo/cluster-onprem.yaml" "$config" "$user" "$work/id_ed25519" << 'PY'
import sys, yaml
source, target, user, key = sys.argv[1:]
config = yaml.safe_load(open(source))
config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
config["auth"].update(ssh_user=user, ssh_private_key=key)
yaml.safe_dump(config, open(target, "w"), sort_keys=False, width=1000)
PY
diff <(python -c 'import sys, yaml; print(yaml.safe_dump(yaml.safe_load(open(sys.argv[1])), sort_keys=True))' "$repo/cluster-onprem.yaml") \
  <(python -c 'import sys, yaml; print(yaml.safe_dump(yaml.safe_load(open(sys.argv[1])), sort_keys=True))' "$config") |
  sed 's/^/  config edit: /' || true

cd "$repo"
start=$SECONDS
ray up -y --no-config-cache "$config" > "$work/ray-up.log" 2>&1 || { tail -n 60 "$work/ray-up.log"; die "ray up"; }
say "ray up: $((SECONDS - start)) s"
grep -hE "^(bash: ulimit|warning: ulimit)" "$work/ray-up.log" | sed 's/^/  node: /' || true

new_secret "$work/dry-run.key"
trials="$(smoke_trials --preset smoke --key-file "$work/dry-run.key")"
head_command="cd ~/radio && python -u sweeps/ablation.py --preset smoke --ray-address auto --tracking-uri http://127.0.0.1:5000 --storage-path /mnt/shared/ray_results --cache-root /mnt/shared/radio-cache --key-file /mnt/shared/radio-secrets/watermark.key"
say "ray exec cluster-onprem.yaml '$head_command'"
start=$SECONDS
ray exec "$config" "$head_command" > "$work/ray-exec.log" 2>&1 || { tail -n 60 "$work/ray-exec.log"; die "ray exec"; }
say "ray exec (the sweep): $((SECONDS - start)) s"
check_mlflow --tracking-uri http://127.0.0.1:5000 --trials "$trials"
[ "$(stat -c %a "$shared/radio-secrets/watermark.key")" = 600 ] || die "the key file is not mode 600"
check_key_absent "$shared/radio-secrets/watermark.key" "$work" "$shared" "$home"

start=$SECONDS
ray down -y "$config" > "$work/ray-down.log" 2>&1 || { tail -n 30 "$work/ray-down.log"; die "ray down"; }
say "ray down: $((SECONDS - start)) s"
for _ in $(seq 30); do (: < /dev/tcp/127.0.0.1/5000) 2> /dev/null || break; sleep 1; done
if (: < /dev/tcp/127.0.0.1/5000) 2> /dev/null; then die "the MLflow server still answers 30 s after ray down"; fi
say "the MLflow server stopped with ray down"
# Nothing of Ray's or MLflow's may outlive `ray down` (its job runners included); ssh's own sessions may.
left=""
for _ in $(seq 30); do
  left="$(pgrep -u "$user" -a | grep -v "sshd:" || true)"
  [ -z "$left" ] && break
  sleep 1
done
[ -z "$left" ] || die "processes of the node's user still run 30 s after ray down:
$left"
say "no process of the node outlived ray down"
say "passed"

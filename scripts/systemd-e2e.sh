#!/usr/bin/env bash
# The unit and the installer under a real systemd: boots systemd as PID 1 of private pid, mount,
# network, UTS, IPC and cgroup namespaces, on an overlay of / whose writes go to a tmpfs, so the
# host is left as it was. Inside, with the local control plane on loopback:
#   curl | bash-style install of the standalone binary -> the sandboxed service becomes ready
#   and heartbeats; the watchdog keeps it alive; a re-run keeps the identity; an invalid env file
#   fails with 78 and no restart; stop exits 0; --uninstall --purge removes everything.
# Needs root, unshare, overlayfs and pivot_root; prints "skipped" and exits 0 where they are
# missing (a developer's machine), fails on anything else.
#   scripts/systemd-e2e.sh [path/to/byteor-agent-linux-x64]
set -euo pipefail
cd "$(dirname "$0")/.."

REPO=$(pwd)
BINARY=$(realpath "${1:-dist/byteor-agent-linux-x64}")
WORK=
UNSHARE_PID=
SYSTEMD_PID=

say() {
  printf 'systemd-e2e: %s\n' "$*"
}

cleanup() {
  # Killing PID 1 of the namespace ends every process in it and releases its mounts.
  if [ -n "$SYSTEMD_PID" ]; then
    kill -KILL "$SYSTEMD_PID" 2>/dev/null || true
  fi
  if [ -n "$UNSHARE_PID" ]; then
    wait "$UNSHARE_PID" 2>/dev/null || true
  fi
  remove_new_cgroups
  if [ -n "$WORK" ]; then
    rm -rf -- "$WORK"
  fi
}

# The namespaced systemd creates cgroups (init.scope, system.slice, …) in the hierarchies it
# sees. Once it is gone they are empty: remove the ones that were not there before, children
# first. rmdir cannot remove a cgroup that is in use.
snapshot_cgroups() {
  find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sort >"$1" || true
}

remove_new_cgroups() {
  [ -n "$WORK" ] && [ -f "$WORK/cgroups.before" ] || return 0
  local attempt dir
  for attempt in 1 2 3 4 5; do
    snapshot_cgroups "$WORK/cgroups.after"
    comm -13 "$WORK/cgroups.before" "$WORK/cgroups.after" | sort -r >"$WORK/cgroups.new"
    [ -s "$WORK/cgroups.new" ] || return 0
    while IFS= read -r dir; do
      rmdir -- "$dir" 2>/dev/null || true
    done <"$WORK/cgroups.new"
    [ "$attempt" = 5 ] || sleep 0.2
  done
}

skip() {
  say "skipped: $*"
  exit 0
}

# PID 1 of the new namespaces: mounts the overlay root, pivots into it, becomes systemd.
write_boot_script() {
  cat >"$WORK/boot.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
work=$1
repo=$2
mount -t tmpfs tmpfs "$work/layers"
mkdir -p "$work/layers/up" "$work/layers/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/layers/up,workdir=$work/layers/work" "$work/merged"
m=$work/merged
mount -t proc proc "$m/proc"
mount --rbind /sys "$m/sys"
mount --rbind /dev "$m/dev"
mount -t tmpfs tmpfs "$m/run"
# The checkout and this work directory as they are, even when not on the root filesystem.
mkdir -p "$m$repo" "$m$work"
mount --bind "$repo" "$m$repo"
mount --bind "$work" "$m$work"
mkdir -p "$m/etc/systemd/system" "$m/.oldroot"
printf '[Unit]\nDescription=byteor-agent e2e\nRequires=basic.target\nAfter=basic.target\n' >"$m/etc/systemd/system/byteor-e2e.target"
cd "$m"
# pivot_root, not chroot: systemd cannot set up PrivateUsers= from inside a chroot.
pivot_root . .oldroot
umount -l /.oldroot
exec /usr/bin/env -i container=other /lib/systemd/systemd --unit=byteor-e2e.target --log-target=journal
EOF
  chmod +x "$WORK/boot.sh"
}

inside() {
  nsenter -t "$SYSTEMD_PID" -m -p -n -u -i -C -r -w "$@"
}

boot() {
  mkdir -p "$WORK/layers" "$WORK/merged"
  snapshot_cgroups "$WORK/cgroups.before"
  write_boot_script
  unshare --pid --fork --mount --uts --ipc --net --cgroup --propagation private "$WORK/boot.sh" "$WORK" "$REPO" \
    >"$WORK/boot.log" 2>&1 </dev/null &
  UNSHARE_PID=$!
  local deadline=$((SECONDS + 30)) state=
  while [ "$SECONDS" -lt "$deadline" ]; do
    SYSTEMD_PID=$(pgrep -P "$UNSHARE_PID" || true)
    if [ -n "$SYSTEMD_PID" ]; then
      state=$(inside systemctl is-system-running 2>/dev/null || true)
      case $state in running | degraded) break ;; esac
    elif ! kill -0 "$UNSHARE_PID" 2>/dev/null; then
      skip "could not boot systemd in namespaces here: $(cat "$WORK/boot.log")"
    fi
    sleep 0.3
  done
  case $state in
    running | degraded) say "ok: systemd $(inside systemctl --version | head -n 1 | cut -d ' ' -f 2) is PID 1 of a private namespace set ($state)" ;;
    *) printf 'systemd-e2e: FAIL: systemd did not come up (state: %s)\n' "${state:-none}" >&2 && exit 1 ;;
  esac
}

# The checks, run inside as one script: $1 the repo, $2 the release directory.
write_checks() {
  cat >"$WORK/checks.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
repo=$1
release=$2
cd /tmp
ok() { printf 'systemd-e2e: ok: %s\n' "$*"; }
fail() { printf 'systemd-e2e: FAIL: %s\n' "$*" >&2; journalctl -u byteor-agent --no-pager -n 30 >&2 || true; exit 1; }
show() { systemctl show -p "$1" --value byteor-agent.service; }
field() { node -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))' "$1" "$2"; }
admin() { curl -fsS "$base/_admin/$1"; }
enrollments() { admin requests | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(String(JSON.parse(s).filter(r=>r.route==="enroll").length)))'; }
env_value() { sed -n "s/^$1='\(.*\)'\$/\1/p" /etc/byteor/agent.env; }

ip link set lo up
(cd "$repo" && setsid npx tsx scripts/control-plane.ts --downloads "$release" >/tmp/cp.json 2>/tmp/cp.log </dev/null &)
for _ in $(seq 150); do [ -s /tmp/cp.json ] && break; sleep 0.2; done
info=$(head -n 1 /tmp/cp.json) || true
[ -n "$info" ] || fail "the control plane did not start: $(cat /tmp/cp.log)"
base=$(field "$info" baseUrl)
token=$(field "$info" enrollmentToken)

# 1. curl | bash: the script arrives on standard input.
curl -fsS "$base/downloads/install.sh" | BYTEOR_ENROLLMENT_TOKEN=$token bash -s -- \
  --download-base-url "$base/downloads" --api-base-url "$base" --org "$(field "$info" orgId)" \
  --project "$(field "$info" projectId)" --environment "$(field "$info" environmentId)" --name e2e --wait 60 >/tmp/install.log 2>&1 ||
  { cat /tmp/install.log >&2; fail "the installer failed"; }
grep -q 'byteor-agent is installed, enrolled and sending heartbeats.' /tmp/install.log || fail "no heartbeat message: $(cat /tmp/install.log)"
[ "$(show ActiveState)" = active ] || fail "the service is $(show ActiveState)"
case $(show StatusText) in healthy*) ;; *) fail "systemd status text: $(show StatusText)" ;; esac
[ "$(stat -c '%a %U:%G' /etc/byteor/agent.env)" = '640 root:byteor-agent' ] || fail "env file: $(stat -c '%a %U:%G' /etc/byteor/agent.env)"
[ "$(stat -c '%a %U' /var/lib/byteor-agent)" = '700 byteor-agent' ] || fail "state dir: $(stat -c '%a %U' /var/lib/byteor-agent)"
[ "$(ps -o user= -p "$(show MainPID)")" = byteor-agent ] || fail "the agent does not run as byteor-agent"
ok "curl | bash install: Type=notify service active as byteor-agent, status '$(show StatusText)', env file 0640 root:byteor-agent, state 0700"
agent_id=$(env_value BYTEOR_AGENT_ID)
enrolls=$(enrollments)

# 2. Re-run without a token: same identity, no enrollment request.
restarted=$SECONDS
bash "$release/install.sh" --download-base-url "$base/downloads" --wait 60 >/tmp/rerun.log 2>&1 || { cat /tmp/rerun.log >&2; fail "the re-run failed"; }
[ "$(env_value BYTEOR_AGENT_ID)" = "$agent_id" ] || fail "the re-run changed the identity"
[ "$(enrollments)" = "$enrolls" ] || fail "the re-run sent an enrollment request"
ok "re-run without a token keeps $agent_id and sends no enrollment request"

# 3. The watchdog (WatchdogSec=60, pings every 30 s) keeps it alive past one period.
while [ $((SECONDS - restarted)) -lt 65 ]; do sleep 1; done
[ "$(show ActiveState)" = active ] && [ "$(show NRestarts)" = 0 ] || fail "after 65 s: $(show ActiveState), $(show NRestarts) restarts, result $(show Result)"
ok "alive after 65 s under WatchdogSec=60 with no restart"

# 4. Stop: exit 0 within the agent's 10 s.
t0=$SECONDS
systemctl stop byteor-agent.service
[ $((SECONDS - t0)) -le 10 ] && [ "$(show Result)" = success ] && [ "$(show ExecMainStatus)" = 0 ] || fail "stop: result $(show Result), status $(show ExecMainStatus)"
ok "systemctl stop: exit 0 in $((SECONDS - t0)) s"

# 5. An invalid env file: 78 and no restart.
cp /etc/byteor/agent.env /tmp/agent.env.good
sed -i "s|^BYTEOR_API_BASE_URL=.*|BYTEOR_API_BASE_URL='ftp://invalid'|" /etc/byteor/agent.env
systemctl start byteor-agent.service 2>/dev/null && fail "started with an invalid env file"
sleep 12
[ "$(show ActiveState)" = failed ] && [ "$(show NRestarts)" = 0 ] && [ "$(show ExecMainStatus)" = 78 ] || fail "invalid config: $(show ActiveState), $(show NRestarts) restarts, status $(show ExecMainStatus)"
ok "invalid env file: failed with 78, not restarted"
cp /tmp/agent.env.good /etc/byteor/agent.env
systemctl reset-failed byteor-agent.service
systemctl start byteor-agent.service || fail "no start after fixing the env file"

# 6. Uninstall and purge.
bash "$release/install.sh" --uninstall --purge >/tmp/purge.log 2>&1 || { cat /tmp/purge.log >&2; fail "--uninstall --purge failed"; }
[ ! -e /etc/systemd/system/byteor-agent.service ] && [ ! -e /usr/local/bin/byteor-agent ] && [ ! -e /etc/byteor/agent.env ] && [ ! -e /var/lib/byteor-agent ] || fail "files left after --purge"
! id byteor-agent >/dev/null 2>&1 || fail "the byteor-agent user is left after --purge"
systemctl cat byteor-agent.service >/dev/null 2>&1 && fail "systemd still knows the unit"
ok "--uninstall --purge: unit, binary, env file, state and user gone"
EOF
  chmod +x "$WORK/checks.sh"
}

main() {
  [ -x "$BINARY" ] || { printf 'systemd-e2e: FAIL: %s is not an executable (npm run build:sea)\n' "$BINARY" >&2 && exit 1; }
  [ "$(id -u)" = 0 ] || skip "needs root"
  if ! command -v unshare >/dev/null 2>&1 || ! command -v nsenter >/dev/null 2>&1; then
    skip "needs unshare and nsenter"
  fi
  [ -x /lib/systemd/systemd ] || skip "needs systemd (/lib/systemd/systemd)"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "needs overlayfs"
  trap cleanup EXIT
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/byteor-systemd-e2e.XXXXXXXX")
  mkdir -p "$WORK/release"
  cp "$BINARY" "$WORK/release/byteor-agent-linux-x64"
  (cd "$WORK/release" && sha256sum byteor-agent-linux-x64 >SHA256SUMS)
  cp packaging/install.sh "$WORK/release/install.sh"
  write_checks
  boot
  inside "$WORK/checks.sh" "$REPO" "$WORK/release"
}

main "$@"

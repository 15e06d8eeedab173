#!/usr/bin/env bash
# ByteOr Cloud agent installer.
#
#   curl -fsSL "$BYTEOR_DOWNLOAD_BASE_URL/install.sh" | sudo bash -s -- \
#     --api-base-url https://api.byteor.com --org org_… --project prj_… --environment env_…
#
# It asks for the enrollment token on the terminal (or takes it from $BYTEOR_ENROLLMENT_TOKEN
# or --token-file); the token is handed to `byteor-agent enroll` through its environment only:
# never on a command line, never written to disk. Run with --help for everything else.
#
# The whole script is functions; the last line calls main. A download cut short runs nothing.

usage() {
  cat <<'EOF'
Installs, enrolls and starts the ByteOr Cloud agent (byteor-agent) as a systemd service.

Usage:
  install.sh [options]                 install or upgrade, enroll if needed, start, wait
  install.sh --uninstall [--purge]     remove it

Enrollment (needed only when this host has no agent identity yet, or with --force):
  --api-base-url URL     API origin, e.g. https://api.byteor.com     ($BYTEOR_API_BASE_URL)
  --org ID               organization ID                              ($BYTEOR_ORG_ID)
  --project ID           project ID                                   ($BYTEOR_PROJECT_ID)
  --environment ID       environment ID                               ($BYTEOR_ENVIRONMENT_ID)
  --name NAME            agent name (default: derived from hostname)  ($BYTEOR_AGENT_NAME)
  --label KEY=VALUE      label, repeatable               ($BYTEOR_AGENT_LABELS as k=v,k2=v2)
  --token-file PATH      read the enrollment token from PATH
                         The token comes from $BYTEOR_ENROLLMENT_TOKEN, --token-file, or a
                         hidden prompt on the terminal; never pass it as an argument.
  --force                re-enroll although this host already has an identity (new token)

Installation:
  --download-base-url URL  where byteor-agent-linux-<arch> and SHA256SUMS are downloaded
                           from; the checksum is verified before anything is installed
                                                            ($BYTEOR_DOWNLOAD_BASE_URL)
  --binary PATH          install this local byteor-agent binary instead of downloading
  --wait SECONDS         how long to wait for the first heartbeat (default 90; 0: don't wait)

Removal:
  --uninstall            stop and remove the service and the binary; keeps the identity in
                         /etc/byteor/agent.env and the state in /var/lib/byteor-agent
  --purge                with --uninstall: also remove those, and the byteor-agent user

  -h, --help             show this help

Re-running the installer is safe: with an identity in /etc/byteor/agent.env it keeps it (no
token needed) and only refreshes the binary and the unit, then restarts the service.

Environment for packaging and tests (defaults in brackets):
  BYTEOR_INSTALL_ROOT    prefix for every path written or read [/]; root is not required
                         when it is not /
  BYTEOR_SYSTEMCTL, BYTEOR_USERADD, BYTEOR_GROUPADD, BYTEOR_USERDEL, BYTEOR_GROUPDEL,
  BYTEOR_CHOWN           commands to use instead of systemctl, useradd, groupadd, userdel,
                         groupdel and chown

Exit status: 0 installed and heartbeating (or removed); 64 usage; 1 anything else; the exit
status of `byteor-agent enroll` when enrollment fails (77: token refused, 69: API unreachable,
78: invalid configuration).
EOF
}

say() {
  printf '%s\n' "$*"
}

warn() {
  printf 'byteor-agent install: warning: %s\n' "$*" >&2
}

die() {
  printf 'byteor-agent install: error: %s\n' "$*" >&2
  exit 1
}

usage_error() {
  printf 'byteor-agent install: %s\n(run with --help for usage)\n' "$*" >&2
  exit 64
}

# --- inputs -----------------------------------------------------------------------------------

set_defaults() {
  SERVICE=byteor-agent.service
  SERVICE_USER=byteor-agent
  SERVICE_GROUP=byteor-agent

  ROOT=${BYTEOR_INSTALL_ROOT:-/}
  ROOT=${ROOT%/}
  BIN_PATH=$ROOT/usr/local/bin/byteor-agent
  CONFIG_DIR=$ROOT/etc/byteor
  ENV_FILE=$CONFIG_DIR/agent.env
  UNIT_DIR=$ROOT/etc/systemd/system
  UNIT_PATH=$UNIT_DIR/$SERVICE
  STATE_DIR=$ROOT/var/lib/byteor-agent

  SYSTEMCTL=${BYTEOR_SYSTEMCTL:-systemctl}
  USERADD=${BYTEOR_USERADD:-useradd}
  GROUPADD=${BYTEOR_GROUPADD:-groupadd}
  USERDEL=${BYTEOR_USERDEL:-userdel}
  GROUPDEL=${BYTEOR_GROUPDEL:-groupdel}
  CHOWN=${BYTEOR_CHOWN:-chown}

  API_BASE_URL=${BYTEOR_API_BASE_URL:-}
  ORG_ID=${BYTEOR_ORG_ID:-}
  PROJECT_ID=${BYTEOR_PROJECT_ID:-}
  ENVIRONMENT_ID=${BYTEOR_ENVIRONMENT_ID:-}
  AGENT_NAME=${BYTEOR_AGENT_NAME:-}
  AGENT_LABELS=${BYTEOR_AGENT_LABELS:-}
  DOWNLOAD_BASE_URL=${BYTEOR_DOWNLOAD_BASE_URL:-}

  # The token stays in this (unexported) shell variable: no child sees it except enroll.
  TOKEN=${BYTEOR_ENROLLMENT_TOKEN:-}
  unset BYTEOR_ENROLLMENT_TOKEN

  TOKEN_FILE=
  LOCAL_BINARY=
  WAIT_SECONDS=90
  FORCE=0
  UNINSTALL=0
  PURGE=0
  TMP_DIR=
  INTERVAL=
}

need_value() {
  # $1: the option, $2: how many arguments are left including it, $3: the value
  if [ "$2" -lt 2 ] || [ -z "$3" ]; then
    usage_error "$1 needs a value"
  fi
}

parse_args() {
  while [ "$#" -gt 0 ]; do
    case $1 in
      -h | --help)
        usage
        exit 0
        ;;
      --api-base-url | --org | --project | --environment | --name | --label | --token-file | \
        --download-base-url | --binary | --wait)
        need_value "$1" "$#" "${2:-}"
        case $1 in
          --api-base-url) API_BASE_URL=$2 ;;
          --org) ORG_ID=$2 ;;
          --project) PROJECT_ID=$2 ;;
          --environment) ENVIRONMENT_ID=$2 ;;
          --name) AGENT_NAME=$2 ;;
          --label) AGENT_LABELS=${AGENT_LABELS:+$AGENT_LABELS,}$2 ;;
          --token-file) TOKEN_FILE=$2 ;;
          --download-base-url) DOWNLOAD_BASE_URL=$2 ;;
          --binary) LOCAL_BINARY=$2 ;;
          --wait) WAIT_SECONDS=$2 ;;
        esac
        shift 2
        ;;
      --force) FORCE=1 && shift ;;
      --uninstall) UNINSTALL=1 && shift ;;
      --purge) PURGE=1 && shift ;;
      --*=*)
        # --opt=value: split and parse again.
        local option=${1%%=*} value=${1#*=}
        shift
        set -- "$option" "$value" "$@"
        ;;
      --token | --enrollment-token)
        usage_error "$1: never pass the enrollment token as an argument (it would show in ps and shell history); export BYTEOR_ENROLLMENT_TOKEN, use --token-file, or let the installer prompt for it"
        ;;
      *) usage_error "unknown argument: $1" ;;
    esac
  done

  case $WAIT_SECONDS in
    '' | *[!0-9]*) usage_error "--wait takes a number of seconds, not '$WAIT_SECONDS'" ;;
  esac
  if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
    usage_error "--purge goes with --uninstall"
  fi
  if [ "$UNINSTALL" = 1 ] && [ "$FORCE" = 1 ]; then
    usage_error "--force and --uninstall contradict each other"
  fi
  if [ -n "$LOCAL_BINARY" ] && [ ! -f "$LOCAL_BINARY" ]; then
    usage_error "--binary $LOCAL_BINARY: no such file"
  fi
  if [ -n "$TOKEN_FILE" ] && [ ! -r "$TOKEN_FILE" ]; then
    usage_error "--token-file $TOKEN_FILE: not a readable file"
  fi
}

# --- the host ---------------------------------------------------------------------------------

require_root() {
  # Under a prefix (packaging, tests) nothing outside it is touched, so root is not needed.
  if [ -n "$ROOT" ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    die "this installer must run as root: it creates a system user and a systemd service. Run it with sudo (curl -fsSL … | sudo bash -s -- …)."
  fi
}

detect_init() {
  # sd_booted(): systemd is PID 1 when /run/systemd/system exists.
  if [ ! -d "$ROOT/run/systemd/system" ]; then
    die "systemd is not running on this host (no /run/systemd/system): byteor-agent runs as a systemd service and this installer supports nothing else. Nothing was changed."
  fi
  if ! command -v "$SYSTEMCTL" >/dev/null 2>&1; then
    die "systemctl not found (looked for '$SYSTEMCTL'). Nothing was changed."
  fi
}

detect_arch() {
  local machine
  machine=$(uname -m)
  case $machine in
    x86_64 | amd64) ARCH=x64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
    *) die "unsupported CPU architecture '$machine': byteor-agent is built for x86_64 (and arm64). Nothing was changed." ;;
  esac
  if [ "$(uname -s)" != Linux ]; then
    die "byteor-agent runs on Linux only (this is $(uname -s)). Nothing was changed."
  fi
}

# --- the existing installation ----------------------------------------------------------------

# Prints the value of KEY in the env file (KEY='value' lines, as byteor-agent writes them).
env_file_value() {
  [ -f "$ENV_FILE" ] || return 0
  local line
  line=$(grep -E "^$1=" "$ENV_FILE" | tail -n 1) || return 0
  line=${line#*=}
  line=${line#\'}
  line=${line%\'}
  printf '%s' "$line"
}

is_enrolled() {
  [ -n "$(env_file_value BYTEOR_AGENT_ID)" ] && [ -n "$(env_file_value BYTEOR_AGENT_API_KEY)" ]
}

# Decides whether to enroll, and checks everything enrollment needs before anything changes.
plan_enrollment() {
  ENROLL=0
  if [ "$FORCE" = 1 ] || ! is_enrolled; then
    ENROLL=1
  fi
  if [ "$ENROLL" = 0 ]; then
    say "This host is enrolled as $(env_file_value BYTEOR_AGENT_ID) ($ENV_FILE): keeping that identity."
    return 0
  fi

  # Values from an earlier, unfinished install count too; flags and environment win.
  [ -n "$API_BASE_URL" ] || API_BASE_URL=$(env_file_value BYTEOR_API_BASE_URL)
  [ -n "$ORG_ID" ] || ORG_ID=$(env_file_value BYTEOR_ORG_ID)
  [ -n "$PROJECT_ID" ] || PROJECT_ID=$(env_file_value BYTEOR_PROJECT_ID)
  [ -n "$ENVIRONMENT_ID" ] || ENVIRONMENT_ID=$(env_file_value BYTEOR_ENVIRONMENT_ID)
  local missing=()
  [ -n "$API_BASE_URL" ] || missing+=("--api-base-url (BYTEOR_API_BASE_URL)")
  [ -n "$ORG_ID" ] || missing+=("--org (BYTEOR_ORG_ID)")
  [ -n "$PROJECT_ID" ] || missing+=("--project (BYTEOR_PROJECT_ID)")
  [ -n "$ENVIRONMENT_ID" ] || missing+=("--environment (BYTEOR_ENVIRONMENT_ID)")
  if [ "${#missing[@]}" -gt 0 ]; then
    usage_error "to enroll this host the installer needs: ${missing[*]}. The ByteOr console shows them next to the enrollment token. Nothing was changed."
  fi

  if [ -n "$TOKEN_FILE" ]; then
    # `read` is a shell builtin: the token passes through no other process.
    IFS= read -r TOKEN <"$TOKEN_FILE" || [ -n "$TOKEN" ] || die "--token-file $TOKEN_FILE is empty"
  fi
  if [ -z "$TOKEN" ] && { : </dev/tty; } 2>/dev/null; then
    # curl … | bash: standard input is this script, so ask on the terminal, without echo.
    IFS= read -rs -p "ByteOr enrollment token (input hidden): " TOKEN </dev/tty || true
    printf '\n' >&2
  fi
  TOKEN=${TOKEN//[[:space:]]/}
  if [ -z "$TOKEN" ]; then
    usage_error "no enrollment token: export BYTEOR_ENROLLMENT_TOKEN (sudo --preserve-env=BYTEOR_ENROLLMENT_TOKEN bash …), pass --token-file PATH, or run from a terminal to be asked for it. Create one in the ByteOr console for this environment. Nothing was changed."
  fi
}

# --- download and verify ----------------------------------------------------------------------

cleanup() {
  if [ -n "${TMP_DIR:-}" ] && [ -d "$TMP_DIR" ]; then
    rm -rf -- "$TMP_DIR"
  fi
}

# https only, except plain http to a loopback host (local tests and mirrors on this host).
check_download_url() {
  case $1 in
    https://*) ;;
    http://127.* | http://localhost | http://localhost[:/]* | http://\[::1\]*) ;;
    *) die "BYTEOR_DOWNLOAD_BASE_URL must be an https:// URL (got '$1'). Nothing was changed." ;;
  esac
}

# download URL FILE
download() {
  if command -v curl >/dev/null 2>&1; then
    local proto='=https'
    case $1 in http://*) proto='=http,https' ;; esac
    curl --fail --silent --show-error --location --proto "$proto" --retry 3 --connect-timeout 20 -o "$2" -- "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget --quiet --tries=3 --timeout=60 -O "$2" -- "$1"
  else
    die "neither curl nor wget is installed; install one of them, or pass --binary PATH. Nothing was changed."
  fi
}

fetch_binary() {
  TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/byteor-agent-install.XXXXXXXX")
  trap cleanup EXIT
  NEW_BINARY=$TMP_DIR/byteor-agent

  if [ -n "$LOCAL_BINARY" ]; then
    say "Using the local binary $LOCAL_BINARY."
    cp -- "$LOCAL_BINARY" "$NEW_BINARY"
  else
    if [ -z "$DOWNLOAD_BASE_URL" ]; then
      usage_error "set BYTEOR_DOWNLOAD_BASE_URL (or --download-base-url) to the release URL that holds byteor-agent-linux-$ARCH and SHA256SUMS, or pass --binary PATH. Nothing was changed."
    fi
    local base=${DOWNLOAD_BASE_URL%/}
    local name=byteor-agent-linux-$ARCH
    check_download_url "$base"
    command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils); it is needed to verify the download. Nothing was changed."
    say "Downloading $base/$name ..."
    download "$base/SHA256SUMS" "$TMP_DIR/SHA256SUMS" || die "could not download $base/SHA256SUMS. Nothing was changed."
    download "$base/$name" "$NEW_BINARY" || die "could not download $base/$name. Nothing was changed."

    local expected actual
    expected=$(awk -v f="$name" '$2 == f || $2 == "*" f { print $1; exit }' "$TMP_DIR/SHA256SUMS")
    if [ -z "$expected" ]; then
      die "$base/SHA256SUMS lists no $name: this release has no build for $ARCH. Nothing was changed."
    fi
    actual=$(sha256sum "$NEW_BINARY" | cut -d ' ' -f 1)
    if [ "$actual" != "$expected" ]; then
      die "checksum mismatch for $name: expected $expected, got $actual. The download is corrupt or was tampered with; nothing was installed."
    fi
    say "Checksum verified ($expected)."
  fi

}

# --- install ----------------------------------------------------------------------------------

ensure_user() {
  if ! grep -q "^$SERVICE_GROUP:" "$ROOT/etc/group" 2>/dev/null; then
    say "Creating system group $SERVICE_GROUP."
    "$GROUPADD" --system "$SERVICE_GROUP"
  fi
  if ! grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd" 2>/dev/null; then
    say "Creating system user $SERVICE_USER."
    local nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    "$USERADD" --system --gid "$SERVICE_GROUP" --no-create-home --home-dir /var/lib/byteor-agent \
      --shell "$nologin" --comment "ByteOr Cloud agent" "$SERVICE_USER"
  fi
}

install_binary() {
  mkdir -p -- "$(dirname -- "$BIN_PATH")"
  # Same directory, then rename: a running agent keeps its old binary until the restart.
  cp -- "$NEW_BINARY" "$BIN_PATH.new"
  chmod 0755 "$BIN_PATH.new"
  # Tried here rather than in $TMPDIR, which is often mounted noexec.
  if ! NEW_VERSION=$("$BIN_PATH.new" --version 2>&1); then
    rm -f -- "$BIN_PATH.new"
    die "the new binary does not run on this host: $NEW_VERSION. The installed one (if any) was left as it was."
  fi
  mv -f -- "$BIN_PATH.new" "$BIN_PATH"
  say "Installed $BIN_PATH ($NEW_VERSION)."
}

# The env file holds the runtime key: root-owned, readable by the service group only.
prepare_env_file() {
  mkdir -p -- "$CONFIG_DIR"
  chmod 0755 "$CONFIG_DIR"
  if [ ! -e "$ENV_FILE" ]; then
    (umask 077 && : >"$ENV_FILE")
  fi
  "$CHOWN" "root:$SERVICE_GROUP" "$ENV_FILE"
  chmod 0640 "$ENV_FILE"
}

install_unit() {
  mkdir -p -- "$UNIT_DIR"
  write_unit >"$UNIT_PATH.new"
  chmod 0644 "$UNIT_PATH.new"
  mv -f -- "$UNIT_PATH.new" "$UNIT_PATH"
  "$SYSTEMCTL" daemon-reload
  say "Installed $UNIT_PATH."
}

enroll() {
  local args=(enroll --config "$ENV_FILE" --state-dir "$STATE_DIR"
    --api-base-url "$API_BASE_URL" --org "$ORG_ID" --project "$PROJECT_ID" --environment "$ENVIRONMENT_ID")
  [ -z "$AGENT_NAME" ] || args+=(--name "$AGENT_NAME")
  if [ -n "$AGENT_LABELS" ]; then
    local label labels
    IFS=, read -r -a labels <<<"$AGENT_LABELS"
    for label in "${labels[@]}"; do
      [ -z "$label" ] || args+=(--label "$label")
    done
  fi
  [ "$FORCE" = 0 ] || args+=(--force)

  say "Enrolling with the ByteOr control plane at $API_BASE_URL ..."
  local status=0
  # The token reaches enroll through its environment only (an assignment, not an argument).
  BYTEOR_ENROLLMENT_TOKEN=$TOKEN "$BIN_PATH" "${args[@]}" || status=$?
  TOKEN=
  if [ "$status" != 0 ]; then
    printf 'byteor-agent install: error: enrollment failed (exit %s; see the message above). byteor-agent is installed but not enrolled and not started. Fix the cause, then run the installer again (with a new token if this one was refused).\n' "$status" >&2
    exit "$status"
  fi
}

start_service() {
  "$SYSTEMCTL" enable "$SERVICE"
  # restart: also picks up a new binary, unit or identity when it was already running.
  "$SYSTEMCTL" restart "$SERVICE"
  say "Started $SERVICE."
}

# After a restart of an enrolled agent: running, status fresh, no heartbeat attempted yet.
restarted_and_waiting() {
  local json
  json=$("$BIN_PATH" status --json --config "$ENV_FILE" --state-dir "$STATE_DIR" 2>/dev/null) || true
  INTERVAL=$(printf '%s\n' "$json" | sed -n 's/^    "interval_seconds": \([0-9]*\),\{0,1\}$/\1/p' | head -n 1)
  printf '%s\n' "$json" | grep -q '^  "state": "starting",$' &&
    printf '%s\n' "$json" | grep -q '^  "stale": false,\{0,1\}$' &&
    printf '%s\n' "$json" | grep -q '^    "consecutive_failures": 0,\{0,1\}$'
}

wait_for_heartbeat() {
  if [ "$WAIT_SECONDS" = 0 ]; then
    say "Not waiting for the first heartbeat (--wait 0); check with: byteor-agent status"
    return 0
  fi
  say "Waiting up to ${WAIT_SECONDS}s for the first heartbeat ..."
  local out
  if out=$("$BIN_PATH" status --wait "$WAIT_SECONDS" --config "$ENV_FILE" --state-dir "$STATE_DIR" 2>&1); then
    say "$out"
    say "byteor-agent is installed, enrolled and sending heartbeats."
    return 0
  fi
  if [ "$ENROLL" = 0 ] && restarted_and_waiting; then
    say "byteor-agent was refreshed and restarted and is running. After a restart its first heartbeat is spread over up to one heartbeat interval (${INTERVAL}s), so that a fleet upgraded together does not reach the control plane at once. Check later with: byteor-agent status"
    return 0
  fi
  {
    printf '%s\n' "$out"
    printf 'byteor-agent install: error: no successful heartbeat within %ss (see above for what byteor-agent status reports).\n' "$WAIT_SECONDS"
    printf 'Look at the service: systemctl status %s; journalctl -u byteor-agent -n 100 --no-pager\n' "$SERVICE"
    printf 'Check the host: byteor-agent doctor\n'
  } >&2
  if [ -z "$ROOT" ] && command -v journalctl >/dev/null 2>&1; then
    journalctl -u byteor-agent -n 20 --no-pager >&2 || true
  fi
  exit 1
}

install_agent() {
  detect_arch
  plan_enrollment
  fetch_binary
  ensure_user
  install_binary
  prepare_env_file
  install_unit
  if [ "$ENROLL" = 1 ]; then
    enroll
  fi
  start_service
  wait_for_heartbeat
}

# --- uninstall --------------------------------------------------------------------------------

uninstall_agent() {
  if [ -f "$UNIT_PATH" ]; then
    "$SYSTEMCTL" disable --now "$SERVICE" || warn "could not stop and disable $SERVICE; removing it anyway"
    rm -f -- "$UNIT_PATH"
    "$SYSTEMCTL" daemon-reload
    "$SYSTEMCTL" reset-failed "$SERVICE" >/dev/null 2>&1 || true
    say "Stopped and removed $SERVICE."
  else
    say "No $UNIT_PATH: the service is not installed."
  fi
  if [ -e "$BIN_PATH" ]; then
    rm -f -- "$BIN_PATH"
    say "Removed $BIN_PATH."
  fi

  if [ "$PURGE" = 0 ]; then
    if [ -e "$ENV_FILE" ] || [ -e "$STATE_DIR" ]; then
      say "Kept $ENV_FILE (the agent identity) and $STATE_DIR (its state): installing again reuses them. Remove them with --uninstall --purge."
    fi
    return 0
  fi

  rm -f -- "$ENV_FILE"
  rmdir -- "$CONFIG_DIR" 2>/dev/null || true
  rm -rf -- "$STATE_DIR"
  if grep -q "^$SERVICE_USER:" "$ROOT/etc/passwd" 2>/dev/null; then
    "$USERDEL" "$SERVICE_USER" || warn "could not remove the user $SERVICE_USER"
  fi
  if grep -q "^$SERVICE_GROUP:" "$ROOT/etc/group" 2>/dev/null; then
    "$GROUPDEL" "$SERVICE_GROUP" || warn "could not remove the group $SERVICE_GROUP"
  fi
  say "Purged $ENV_FILE, $STATE_DIR and the $SERVICE_USER user. The agent still appears in the ByteOr console until you remove it there."
}

# --- the unit ---------------------------------------------------------------------------------

# packaging/systemd/byteor-agent.service, verbatim (a test keeps the two identical).
write_unit() {
  cat <<'UNIT'
[Unit]
Description=ByteOr Cloud agent
Wants=network-online.target
After=network-online.target
# Five failed starts within ten minutes and systemd stops trying (systemctl reset-failed to retry).
StartLimitIntervalSec=10min
StartLimitBurst=5

[Service]
Type=notify
# The agent cannot send unix datagrams itself: it spawns systemd-notify (READY=1, WATCHDOG=1,
# STATUS=, STOPPING=1), a child process, which only NotifyAccess=all lets through.
NotifyAccess=all
# The agent pings every WatchdogSec/2; a stalled event loop gets killed (SIGABRT) and restarted.
WatchdogSec=60s
User=byteor-agent
Group=byteor-agent
# /var/lib/byteor-agent, owned by the service user, mode 0700; exported as $STATE_DIRECTORY.
StateDirectory=byteor-agent
StateDirectoryMode=0700
# First-boot enrollment for hosts whose env file was provisioned with BYTEOR_ENROLLMENT_TOKEN
# (images, config management): a no-op once enrolled. "+" runs it as root outside the sandbox,
# since it rewrites the root-owned env file; the token never appears on a command line.
# RestartPreventExitStatus= looks at the main process only, so a permanent failure here (64, 65,
# 77 token refused, 78 invalid configuration) is left to ExecStart, which then exits 78 (no
# identity, or the same invalid configuration) and is not restarted; anything else (69, 75:
# control plane unreachable) fails the start and is retried within the start limit.
ExecStartPre=+/bin/sh -c '/usr/local/bin/byteor-agent enroll --if-needed --config /etc/byteor/agent.env || { rc=$$?; case $$rc in 64|65|77|78) exit 0 ;; esac; exit $$rc; }'
# The agent reads /etc/byteor/agent.env itself (root:byteor-agent, mode 0640); no
# EnvironmentFile=, so its runtime key is not copied into the process environment.
ExecStart=/usr/local/bin/byteor-agent run --config /etc/byteor/agent.env
Restart=on-failure
RestartSec=10s
# 78 (EX_CONFIG): the configuration is invalid; restarting cannot fix it.
RestartPreventExitStatus=78
# Enrollment retries for up to 3 minutes before it gives up.
TimeoutStartSec=5min
# The agent exits within 10 s of SIGTERM; leave it room before SIGKILL.
TimeoutStopSec=30s
UMask=0077

# Sandbox: `systemd-analyze security --offline=true` scores this unit 1.3 (the bar is 1.5; the
# rest is the network access the agent needs, NotifyAccess=all, and the items below).
# What the agent needs: IPv4/IPv6 to the API (and a proxy), AF_UNIX for the notify socket,
# its state directory read-write, /etc/byteor/agent.env readable, and exec of systemd-notify.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
PrivateUsers=yes
PrivateMounts=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# A denied call fails with EPERM instead of killing the agent.
SystemCallErrorNumber=EPERM
# MemoryDenyWriteExecute=yes is deliberately absent: V8 makes its code pages executable
# (mprotect with PROT_EXEC), which that filter forbids. Checked with the same restriction
# applied through prctl(PR_SET_MDWE): Node 20 dies at its first compile, the standalone binary
# (Node 24) already in `--version`. `--jitless` is no way out: it disables WebAssembly, and
# fetch/undici parse HTTP with llhttp compiled to WebAssembly.
# ProcSubset=pid is absent too: the heartbeat's host metrics read /proc/meminfo (MemAvailable).
DevicePolicy=closed

[Install]
WantedBy=multi-user.target
UNIT
}

main() {
  set -euo pipefail
  umask 022
  set_defaults
  parse_args "$@"
  require_root
  detect_init
  if [ "$UNINSTALL" = 1 ]; then
    uninstall_agent
  else
    install_agent
  fi
}

main "$@"

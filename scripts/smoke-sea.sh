#!/usr/bin/env bash
# Smoke test of the standalone binary on a host without Node: --version, then enroll, run --once
# and status against the local control plane (scripts/control-plane.ts, over real HTTP on
# loopback). When run as root, /usr/bin/node is hidden in a private mount namespace, so the
# binary provably runs without a Node install; otherwise PATH is only /usr/bin:/bin.
#   scripts/smoke-sea.sh [path/to/byteor-agent-linux-x64]
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=$(realpath "${1:-dist/byteor-agent-linux-x64}")
WORK=
CP_PID=

cleanup() {
  if [ -n "$CP_PID" ]; then
    # The whole process group: npx -> tsx -> node.
    kill -- -"$CP_PID" 2>/dev/null || true
    wait "$CP_PID" 2>/dev/null || true
  fi
  if [ -n "$WORK" ]; then
    rm -rf -- "$WORK"
  fi
}

fail() {
  printf 'smoke-sea: FAIL: %s\n' "$*" >&2
  exit 1
}

# Runs the binary with an empty environment (plus the variables given as NAME=value before
# the --) and, when possible, no node anywhere on the system.
without_node() {
  local vars=()
  while [ "$1" != -- ]; do
    vars+=("$1")
    shift
  done
  shift
  if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
    # /dev/null over the node binary: `node` is then "not found" on PATH.
    # shellcheck disable=SC2016 # expanded by the inner sh
    unshare --mount --propagation private -- sh -c 'for n in /usr/bin/node /usr/local/bin/node; do [ ! -e "$n" ] || mount --bind /dev/null "$n"; done; exec "$@"' \
      sh env -i PATH=/usr/bin:/bin "${vars[@]}" sh -c '! command -v node >/dev/null || { echo "smoke-sea: node is still on PATH" >&2; exit 99; }; exec "$@"' sh "$@"
  else
    env -i PATH=/usr/bin:/bin "${vars[@]}" "$@"
  fi
}

json_field() {
  node -e 'const v = JSON.parse(process.argv[1])[process.argv[2]]; if (v === undefined) process.exit(1); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))' "$1" "$2"
}

main() {
  trap cleanup EXIT
  [ -x "$BINARY" ] || fail "$BINARY is not an executable (build it with npm run build:sea)"
  WORK=$(mktemp -d)
  local version want
  want=$(node -p 'require("./package.json").version')
  version=$(without_node -- "$BINARY" --version) || fail "--version failed"
  [ "$version" = "$want" ] || fail "--version printed '$version', expected '$want'"
  printf 'smoke-sea: ok: %s --version -> %s (no node on the host)\n' "$BINARY" "$version"

  # A process group of its own (setsid), so that cleanup ends npx and the node processes under it.
  setsid npx tsx scripts/control-plane.ts >"$WORK/cp.json" 2>"$WORK/cp.log" &
  CP_PID=$!
  local deadline=$((SECONDS + 60)) info=
  while [ -z "$info" ]; do
    info=$(head -n 1 "$WORK/cp.json")
    if [ -z "$info" ]; then
      kill -0 "$CP_PID" 2>/dev/null || fail "the control plane exited: $(cat "$WORK/cp.log")"
      [ "$SECONDS" -lt "$deadline" ] || fail "the control plane printed nothing within 60 s"
      sleep 0.2
    fi
  done
  local base_url token org project environment
  base_url=$(json_field "$info" baseUrl)
  token=$(json_field "$info" enrollmentToken)
  org=$(json_field "$info" orgId)
  project=$(json_field "$info" projectId)
  environment=$(json_field "$info" environmentId)

  local env_file=$WORK/agent.env state_dir=$WORK/state
  without_node BYTEOR_ENROLLMENT_TOKEN="$token" -- "$BINARY" enroll --config "$env_file" --state-dir "$state_dir" \
    --api-base-url "$base_url" --org "$org" --project "$project" --environment "$environment" --name smoke-sea ||
    fail "enroll failed"
  grep -q "^BYTEOR_AGENT_ID='" "$env_file" || fail "enroll wrote no BYTEOR_AGENT_ID to $env_file"
  ! grep -q BYTEOR_ENROLLMENT_TOKEN "$env_file" || fail "the enrollment token is still in $env_file"
  printf 'smoke-sea: ok: enroll\n'

  without_node -- "$BINARY" run --once --config "$env_file" --state-dir "$state_dir" || fail "run --once failed"
  printf 'smoke-sea: ok: run --once\n'

  local status last_success
  status=$(without_node -- "$BINARY" status --json --config "$env_file" --state-dir "$state_dir") || true
  last_success=$(node -e 'const s = JSON.parse(process.argv[1]); process.stdout.write(String(s.heartbeat?.last_success_at ?? ""))' "$status")
  [ -n "$last_success" ] || fail "status --json shows no successful heartbeat: $status"
  printf 'smoke-sea: ok: status reports a heartbeat at %s\n' "$last_success"
}

main "$@"

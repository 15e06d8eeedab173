#!/usr/bin/env bash
# Static checks of packaging/: shellcheck, the unit embedded in install.sh, systemd-analyze
# verify, and the sandbox score (systemd-analyze security --offline=true must be <= 1.5).
# Needs shellcheck and systemd-analyze (Debian: shellcheck, systemd); no running systemd.
#   scripts/check-packaging.sh [path/to/byteor-agent]   (the binary verify resolves ExecStart to)
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=1.5
UNIT=packaging/systemd/byteor-agent.service
INSTALLED_BINARY=/usr/local/bin/byteor-agent
failed=0

fail() {
  printf 'check-packaging: FAIL: %s\n' "$*" >&2
  failed=1
}

pass() {
  printf 'check-packaging: ok: %s\n' "$*"
}

check_shellcheck() {
  if shellcheck packaging/install.sh scripts/check-packaging.sh scripts/smoke-sea.sh scripts/systemd-e2e.sh .ci/run; then
    pass "shellcheck packaging/install.sh scripts/check-packaging.sh scripts/smoke-sea.sh scripts/systemd-e2e.sh .ci/run"
  else
    fail "shellcheck found problems (above)"
  fi
}

check_embedded_unit() {
  # install.sh is one file (curl | bash), so it carries the unit inside; they must not drift.
  if diff -u "$UNIT" <(sed -n "/^  cat <<'UNIT'\$/,/^UNIT\$/p" packaging/install.sh | sed '1d;$d'); then
    pass "the unit embedded in packaging/install.sh is $UNIT"
  else
    fail "the unit embedded in packaging/install.sh differs from $UNIT (diff above): copy $UNIT into write_unit()"
  fi
}

check_verify() {
  # verify insists that ExecStart= binaries exist. The unit names the installed path, which a
  # build host does not have, so verify a copy whose /usr/local/bin/byteor-agent is rewritten to
  # an existing executable; everything else is the file as shipped.
  local binary=${1:-}
  if [ -z "$binary" ]; then
    for candidate in dist/byteor-agent-linux-x64 dist/byteor-agent.cjs /bin/true; do
      if [ -x "$candidate" ]; then
        binary=$candidate
        break
      fi
    done
  fi
  binary=$(realpath "$binary")
  local dir out
  dir=$(mktemp -d)
  sed "s#$INSTALLED_BINARY#$binary#g" "$UNIT" >"$dir/byteor-agent.service"
  if ! out=$(systemd-analyze verify "$dir/byteor-agent.service" 2>&1); then
    fail "systemd-analyze verify failed: $out"
  elif [ -n "$out" ]; then
    fail "systemd-analyze verify printed: $out"
  else
    pass "systemd-analyze verify $UNIT (ExecStart binary: $binary) printed nothing"
  fi
  rm -rf -- "$dir"
}

check_security() {
  local out score
  out=$(systemd-analyze security --offline=true --no-pager "$UNIT" 2>&1) || true
  score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  if [ -z "$score" ]; then
    fail "systemd-analyze security printed no score: $out"
  elif awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s <= max) }'; then
    pass "systemd-analyze security --offline=true $UNIT: exposure $score (at most $MAX_EXPOSURE)"
  else
    printf '%s\n' "$out" | grep -v '^✓' >&2
    fail "systemd-analyze security --offline=true $UNIT: exposure $score is above $MAX_EXPOSURE"
  fi
}

main() {
  check_shellcheck
  check_embedded_unit
  check_verify "${1:-}"
  check_security
  exit "$failed"
}

main "$@"

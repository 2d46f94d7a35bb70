#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet, without starting
# their services (bacula-fd's would listen on port 9102): a policy-rc.d that refuses every start is
# put in place for the install when there is none, and removed afterwards. Needs root and apt-get.
# Used by .ci/run, scripts/bacula/lab.sh and the tests (test/helpers/debian.ts) that need a
# package on first use; installs from one caller at a time (a lock under TMPDIR), so two test files
# installing at once do not race over dpkg's lock or the policy-rc.d.
#
#   scripts/debian-install.sh PACKAGE...
#
# Exit 0 when every package is installed (now or already); otherwise a one-line reason on stderr.
set -euo pipefail

die() { echo "debian-install: $*" >&2; exit 1; }

[ $# -gt 0 ] || die "usage: debian-install.sh PACKAGE..."
command -v dpkg-query >/dev/null || die "dpkg-query not found: not a Debian system"

missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

want=$(missing "$@" | tr '\n' ' ')
want=${want% }
[ -n "$want" ] || exit 0
[ "$(id -u)" = 0 ] || die "not root: cannot install $want (run 'apt-get install $want' as root)"
command -v apt-get >/dev/null || die "apt-get not found: cannot install $want"

if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/agentfd-debian-install.lock"
  flock -w 1200 9 || die "another install held the lock for 20 minutes; not installing $want"
  # The holder may have installed them meanwhile.
  # shellcheck disable=SC2086 # a list of package names
  want=$(missing $want | tr '\n' ' ')
  want=${want% }
  [ -n "$want" ] || exit 0
fi

POLICY=/usr/sbin/policy-rc.d
POLICY_OURS=0
log=$(mktemp "${TMPDIR:-/tmp}/agentfd-debian-install.XXXXXX")
cleanup() {
  rm -f "$log"
  if [ "$POLICY_OURS" = 1 ]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from agentfd scripts/debian-install.sh: start no services\nexit 101\n' > "$POLICY"
  chmod 755 "$POLICY"
  POLICY_OURS=1
fi

# apt's first error line, else its last line: the one line a caller shows.
apt_error() {
  local e
  e=$(grep -E '^E:' "$log" | head -n 1) || true
  echo "${e:-$(tail -n 1 "$log")}"
}

echo "debian-install: installing $want (services not started)" >&2
install() {
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $want >"$log" 2>&1
}
# The package lists may be missing or stale (a fresh machine): update them once and try again.
if ! install; then
  apt-get update -q -o DPkg::Lock::Timeout=600 >"$log" 2>&1 || die "apt-get update failed ($(apt_error)): cannot install $want (no network or no apt sources?)"
  install || die "apt-get install $want failed: $(apt_error)"
fi
echo "debian-install: installed $want" >&2

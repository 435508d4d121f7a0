#!/bin/sh
# Issue 9's kill loops: test/continuity-lab.test.ts with every event repeated ROUNDS times
# (default 20) while one workload of long-lived connections runs, in nat and in dsr: SIGKILL of
# the packet worker, `vipgate upgrade` to a copied build, SIGKILL of vipgate and `vipgate run`
# again. Passes only with zero broken connections and every byte checked. As root; about
# 11 minutes at 20 rounds on a 2-core machine.
#
#   sudo npm run soak:crash                 (= scripts/soak-crash.sh)
#   sudo ROUNDS=50 scripts/soak-crash.sh
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "soak-crash: needs root (network namespaces, AF_PACKET); run it with sudo" >&2
  exit 2
fi
rounds="${ROUNDS:-20}"
case "$rounds" in ''|*[!0-9]*) echo "soak-crash: ROUNDS must be a positive integer, got '$rounds'" >&2; exit 2 ;; esac
npx tsc -p tsconfig.json
echo "soak-crash: $rounds rounds of each event, nat and dsr"
CONTINUITY_ROUNDS="$rounds" npx tap --timeout=7200 dist/test/continuity-lab.test.js

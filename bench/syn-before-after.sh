#!/usr/bin/env bash
# The SYN path before and after a change, side by side (bench/side-by-side.sh): REF (default main,
# built into a temporary directory) against this checkout, alternating ROUNDS times, on the
# syn-new cases, and this checkout's syn-new cases with the SYN check on (backends verified)
# against REF's plain ones. Prints each run's frames/s and the median ratio this/REF per case.
#
#   bench/syn-before-after.sh [REF] [ROUNDS]        e.g. bench/syn-before-after.sh main 5
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json >/dev/null
exec bench/side-by-side.sh "${1:-main}" "${2:-5}" "syn-new dsr" "syn-new nat" \
  "syn-new dsr syncheck=syn-new dsr" "syn-new nat syncheck=syn-new nat"

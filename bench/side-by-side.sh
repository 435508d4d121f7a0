#!/usr/bin/env bash
# Side-by-side packet-path benchmark: this checkout against another built checkout (e.g. main),
# run alternately case by case so both see the same machine load, printing new/old ratios.
#
#   bench/side-by-side.sh OTHER_CHECKOUT [ROUNDS] [CASE...]
#
# Both checkouts must be built (npx tsc -p .). Each run is `node --expose-gc
# dist/bench/dataplane.bench.js --quick --json --case CASE` (--case matches a substring, so
# give the exact name of one case, e.g. "est dsr 4Ki"). Prints one line per round and case and
# the median ratio per case. Default: 3 rounds of "est dsr 4Ki", "est nat c->b 4Ki", "syn-new dsr".
set -euo pipefail
other=${1:?usage: bench/side-by-side.sh OTHER_CHECKOUT [ROUNDS] [CASE...]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("est dsr 4Ki" "est nat c->b 4Ki" "syn-new dsr")
here=$(cd "$(dirname "$0")/.." && pwd)
fps() { # checkout case -> frames/s of that case
  (cd "$1" && node --expose-gc dist/bench/dataplane.bench.js --quick --json --case "$2" 2>/dev/null | tail -1) |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).results.find(x=>x.case===process.argv[1]);console.log(r?r.frames_per_s:0)})' "$2"
}
for c in "${cases[@]}"; do
  ratios=()
  for r in $(seq 1 "$rounds"); do
    old=$(fps "$other" "$c"); new=$(fps "$here" "$c")
    ratio=$(node -e 'console.log((process.argv[1]/process.argv[2]).toFixed(3))' "$new" "$old")
    ratios+=("$ratio")
    printf '%-20s round %d: old %s new %s frames/s, new/old %s\n' "$c" "$r" "$old" "$new" "$ratio"
  done
  printf '%-20s median new/old %s\n' "$c" "$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (${#ratios[@]} + 1) / 2 ))p")"
done

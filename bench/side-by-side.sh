#!/usr/bin/env bash
# Side-by-side packet-path benchmark: this checkout against another (e.g. main), run alternately
# case by case so both see the same machine load, printing new/old ratios.
#
#   bench/side-by-side.sh OTHER [ROUNDS] [CASE...]
#
# OTHER: a built checkout's directory, or a git ref (e.g. main), which is built into a temporary
# directory (nothing in its checkout is touched). This checkout must be built (npx tsc -p .).
# Each run is `node --expose-gc dist/bench/dataplane.bench.js --quick --json --case CASE`
# (--case matches a substring, so give the exact name of one case, e.g. "est dsr 4Ki").
# CASE may be NEW=OLD to compare this checkout's case NEW with OTHER's case OLD (e.g.
# "syn-new dsr syncheck=syn-new dsr": the SYN check on here against none there). Prints one line
# per round and case and the median ratio per case. Default: 3 rounds of "est dsr 4Ki",
# "est nat c->b 4Ki", "syn-new dsr".
set -euo pipefail
other=${1:?usage: bench/side-by-side.sh OTHER_CHECKOUT_OR_GIT_REF [ROUNDS] [CASE...]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("est dsr 4Ki" "est nat c->b 4Ki" "syn-new dsr")
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$other" ]; then
  ref=$other
  other=$(mktemp -d /tmp/vipgate-base-XXXXXX)
  trap 'rm -rf "$other"' EXIT
  git -C "$here" archive "$ref" | tar -x -C "$other"
  ln -s "$here/node_modules" "$other/node_modules"
  (cd "$other" && npx tsc -p tsconfig.json >/dev/null)
  echo "built $ref in $other" >&2
fi
fps() { # checkout case -> frames/s of that case
  (cd "$1" && node --expose-gc dist/bench/dataplane.bench.js --quick --json --case "$2" 2>/dev/null | tail -1) |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).results.find(x=>x.case===process.argv[1]);console.log(r?r.frames_per_s:0)})' "$2"
}
for c in "${cases[@]}"; do
  newc=${c%%=*}; oldc=${c#*=}
  ratios=()
  for r in $(seq 1 "$rounds"); do
    old=$(fps "$other" "$oldc"); new=$(fps "$here" "$newc")
    ratio=$(node -e 'console.log((process.argv[1]/process.argv[2]).toFixed(3))' "$new" "$old")
    ratios+=("$ratio")
    printf '%-20s round %d: old %s new %s frames/s, new/old %s\n' "$c" "$r" "$old" "$new" "$ratio"
  done
  printf '%-20s median new/old %s\n' "$c" "$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (${#ratios[@]} + 1) / 2 ))p")"
done

#!/usr/bin/env bash
# The SYN path before and after a change, side by side: builds REF (default main) into a temporary
# directory, then runs the packet-path benchmark's syn-new cases of REF and of this checkout in
# alternation (ROUNDS times each, so both see the same machine), and prints each run's frames/s
# and the median ratio this/REF per case. Nothing in REF's checkout is touched.
#
#   bench/syn-before-after.sh [REF] [ROUNDS]        e.g. bench/syn-before-after.sh main 5
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-main}"
rounds="${2:-5}"
base="$(mktemp -d /tmp/vipgate-base-XXXXXX)"
trap 'rm -rf "$base"' EXIT
git archive "$ref" | tar -x -C "$base"
ln -s "$PWD/node_modules" "$base/node_modules"
(cd "$base" && npx tsc -p tsconfig.json >/dev/null)
npx tsc -p tsconfig.json >/dev/null
run() { node --expose-gc "$1/dist/bench/dataplane.bench.js" --case 'syn-new' --quick --json 2>/dev/null | tail -1; }
out="$(mktemp)"
for i in $(seq "$rounds"); do
  echo "{\"who\":\"$ref\",\"r\":$(run "$base")}" >>"$out"
  echo "{\"who\":\"this\",\"r\":$(run "$PWD")}" >>"$out"
  echo "round $i of $rounds done" >&2
done
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const fps = (who, c) => lines.filter((l) => l.who === who).map((l) => (l.r.results.find((x) => x.case === c) || {}).frames_per_s).filter(Boolean);
const ref = process.argv[2];
console.log(`syn-new frames/s, ${ref} vs this checkout, ${lines.length / 2} alternating rounds (medians):`);
for (const c of ["syn-new dsr", "syn-new nat"]) {
  const a = fps(ref, c), b = fps("this", c);
  console.log(`${c.padEnd(12)} ${ref} ${(med(a) / 1e6).toFixed(3)}M  this ${(med(b) / 1e6).toFixed(3)}M  ratio this/${ref} ${(med(b) / med(a)).toFixed(3)}   runs ${ref} [${a.map((x) => (x / 1e6).toFixed(2)).join(" ")}] this [${b.map((x) => (x / 1e6).toFixed(2)).join(" ")}]`);
  const on = fps("this", c + " syncheck");
  if (on.length) console.log(`${(c + " +check").padEnd(12)} this, SYN check on and backends verified ${(med(on) / 1e6).toFixed(3)}M  ratio on/${ref} ${(med(on) / med(a)).toFixed(3)}`);
}' "$out" "$ref"
rm -f "$out"

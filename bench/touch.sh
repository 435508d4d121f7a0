#!/usr/bin/env bash
# The batch prefetch ("touch first", src/link/pump.ts) side by side with the plain batch, each
# case alone in a fresh process (a packet worker has one Dataplane, so its compiled code stays
# monomorphic; in one process many cases share it and skew each other), rounds alternating so
# every case sees the same machine. Then the same touched cases with the state in a file mapped
# from /dev/shm (the worker's shared region, 4 KiB pages on Debian) and from a tmpfs mounted
# with huge=within_size (2 MiB pages: README "Huge pages for the shared state"), when run as
# root (it mounts one under /tmp and removes it after). Prints each run and the medians.
#
#   bench/touch.sh [ROUNDS]          (default 3; this checkout built: npx tsc -p .)
set -euo pipefail
rounds=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp /tmp/vipgate-touch-XXXXXX)
huge=""
cleanup() { rm -f "$out"; if [ -n "$huge" ]; then umount "$huge" 2>/dev/null || true; rmdir "$huge" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then
  huge=$(mktemp -d /tmp/vipgate-touch-huge-XXXXXX)
  mount -t tmpfs -o huge=within_size,size=1g vipgate-touch-huge "$huge"
fi

run() { # label, then bench arguments
  local label=$1; shift
  local fps
  fps=$(node --expose-gc "$here/dist/bench/dataplane.bench.js" --repeats 3 --json "$@" 2>/dev/null | tail -1 |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).results[0];console.log(r?r.frames_per_s:"NaN")})')
  printf '%s\t%s\n' "$label" "$fps" | tee -a "$out"
}

for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  for k in 4Ki 16Ki 64Ki 1Mi; do
    run "$k touch" --case "=est dsr $k batch256 touch"
    run "$k plain" --case "=est dsr $k batch256"
  done
  if [ -n "$huge" ]; then
    for k in 64Ki 1Mi; do
      run "$k touch /dev/shm" --shm /dev/shm --case "=est dsr $k batch256 touch"
      run "$k touch huge tmpfs" --shm "$huge" --case "=est dsr $k batch256 touch"
    done
  fi
done

node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split("\t"));
const by = new Map();
for (const [k, v] of lines) { if (!by.has(k)) by.set(k, []); by.get(k).push(Number(v)); }
const med = (xs) => { const s = xs.slice().sort((a, b) => a - b); const m = s.length >> 1; return s.length & 1 ? s[m] : (s[m - 1] + s[m]) / 2; };
const M = (x) => (x / 1e6).toFixed(2) + "M";
console.log("\nmedian frames/s (established-flow ACKs, dsr, batches of 256), each case alone in a fresh process:");
for (const [k, xs] of by) console.log(`  ${k.padEnd(20)} ${M(med(xs)).padStart(7)}   (${xs.map(M).join(", ")})`);
const ratio = (a, b) => by.has(a) && by.has(b) ? (med(by.get(a)) / med(by.get(b))).toFixed(2) + "x" : "n/a";
console.log("touched / plain:", ["4Ki", "16Ki", "64Ki", "1Mi"].map((k) => `${k} ${ratio(k + " touch", k + " plain")}`).join(", "));
if (by.has("64Ki touch huge tmpfs")) console.log("huge tmpfs / /dev/shm (touched):", ["64Ki", "1Mi"].map((k) => `${k} ${ratio(k + " touch huge tmpfs", k + " touch /dev/shm")}`).join(", "));
' "$out"

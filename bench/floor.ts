// The machine's floor for stall and gap goals (issues 9 and 10), measured beside them in the same
// run: bench/gen/hiccup.c, a C loop that only reads the clock, alone on the machine. Its longest
// gap is what the scheduler, interrupts and the hypervisor take from any program at that priority;
// a packet path cannot be shown to stall less than that here.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export interface Floor { how: string; seconds: number; max_us: number; over_100us: number; over_1ms: number }

let built: string | null = null;
function hiccup(): string {
  if (built) return built;
  const out = path.resolve(__dirname, 'hiccup');
  const src = path.resolve(__dirname, '..', '..', 'bench', 'gen', 'hiccup.c');
  const r = spawnSync(process.env.CC || 'cc', ['-O2', '-Wall', '-o', out, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build ${src}: ${r.error?.message ?? r.stderr}`);
  return (built = out);
}

/**
 * Run the loop for `seconds` under `how`: 'nice -n N' or 'chrt -f 99' (root; kept under the RT
 * throttle's 0.95 s by the caller), or '' for the caller's own priority.
 */
export function machineFloor(seconds: number, how: string): Floor {
  const argv = [...(how ? how.split(' ') : []), hiccup(), String(seconds)];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: (seconds + 10) * 1000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.error?.message ?? r.stderr}`);
  return { how: how || 'nice 0', ...(JSON.parse(r.stdout.trim()) as Omit<Floor, 'how'>) };
}

export function describeFloor(f: Floor): string {
  return `${f.how}: longest ${(f.max_us / 1000).toFixed(2)} ms in ${f.seconds.toFixed(1)} s, ${(f.over_100us / f.seconds).toFixed(1)}/s over 0.1 ms, ${(f.over_1ms / f.seconds).toFixed(2)}/s over 1 ms`;
}

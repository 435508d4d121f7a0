// Lab benchmark (root, Linux): connections per second and TCP connect latency (p50/p99) from a
// real client kernel to a real HTTP server, through vipgate (the VIP) and directly (the same
// backend b1 routed by the kernel alone), in one run, rounds interleaved so that both see the
// same machine. Not a test: it prints figures.
//
//   npm run bench:lab                      dsr and nat, 5 rounds of 2000 connections each way
//   node dist/bench/lab.bench.js --mode nat --rounds 3 --n 1000 --json

import { parseArgs } from 'node:util';
import { createLab, canRunLab, httpLoad, percentile } from '../scenarios/lab/lab';
import { startVipgate, labConfigYaml } from '../scenarios/lab/vipgate';

interface Round { path: 'vipgate' | 'direct'; connPerSec: number; p50: number; p99: number; failed: number }

const median = (xs: number[]) => { const s = xs.slice().sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };

async function benchMode(mode: 'dsr' | 'nat', rounds: number, n: number, concurrency: number): Promise<Round[]> {
  const lab = await createLab({ mode, clients: 1, backends: 1 });
  const out: Round[] = [];
  let vg = null as Awaited<ReturnType<typeof startVipgate>> | null;
  try {
    vg = await startVipgate(lab, labConfigYaml(lab));
    const urls = { vipgate: lab.vipUrls[0]!, direct: lab.directUrl };
    await httpLoad(lab, 'c1', urls.vipgate, 200, { concurrency });   // warm-up: ARP, JIT
    await httpLoad(lab, 'c1', urls.direct, 200, { concurrency });
    for (let r = 0; r < rounds; r++) {
      for (const p of (r % 2 ? ['direct', 'vipgate'] : ['vipgate', 'direct']) as Array<'vipgate' | 'direct'>) {
        const res = await httpLoad(lab, 'c1', urls[p], n, { concurrency, timeoutMs: 5000 });
        out.push({ path: p, connPerSec: res.ok / (res.elapsedMs / 1000), p50: percentile(res.latenciesMs, 50), p99: percentile(res.latenciesMs, 99), failed: res.failed });
      }
    }
  } finally {
    if (vg) await vg.stop();
    lab.teardown();
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mode: { type: 'string' }, rounds: { type: 'string' }, n: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' } } });
  const can = canRunLab();
  if (!can.ok) { process.stderr.write(`lab bench: needs root and network namespaces (${can.why})\n`); process.exit(2); }
  const modes = (values.mode ? [values.mode] : ['dsr', 'nat']) as Array<'dsr' | 'nat'>;
  const rounds = Number(values.rounds ?? 5), n = Number(values.n ?? 2000), conc = Number(values.concurrency ?? 8);
  const report: Record<string, unknown> = {};
  const lines = [`lab bench: ${rounds} interleaved rounds x ${n} HTTP requests on fresh TCP connections, concurrency ${conc}, client c1 -> backend b1; medians over rounds`,
    'mode  path       conn/s   connect p50 ms   p99 ms   failed'];
  for (const mode of modes) {
    const rs = await benchMode(mode, rounds, n, conc);
    const sum = (p: 'vipgate' | 'direct') => {
      const x = rs.filter((r) => r.path === p);
      return { connPerSec: median(x.map((r) => r.connPerSec)), p50: median(x.map((r) => r.p50)), p99: median(x.map((r) => r.p99)), failed: x.reduce((a, r) => a + r.failed, 0) };
    };
    const v = sum('vipgate'), d = sum('direct');
    report[mode] = { vipgate: v, direct: d, ratioConnPerSec: v.connPerSec / d.connPerSec, addedP50ms: v.p50 - d.p50, addedP99ms: v.p99 - d.p99, rounds: rs };
    for (const [p, s] of [['vipgate', v], ['direct', d]] as const) {
      lines.push(`${mode.padEnd(5)} ${p.padEnd(8)} ${s.connPerSec.toFixed(0).padStart(8)}   ${s.p50.toFixed(3).padStart(14)}   ${s.p99.toFixed(3).padStart(6)}   ${s.failed}`);
    }
    lines.push(`${mode.padEnd(5)} vipgate/direct conn/s ${(v.connPerSec / d.connPerSec).toFixed(2)}, added connect latency p50 ${(v.p50 - d.p50).toFixed(3)} ms, p99 ${(v.p99 - d.p99).toFixed(3)} ms`);
  }
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : lines.join('\n') + '\n');
}

main().catch((e) => { process.stderr.write(`lab bench: ${(e as Error).stack}\n`); process.exit(1); });

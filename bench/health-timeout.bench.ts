// Does a 10 ms health-check timeout (the patent's watchdog) flap on this machine? (root, Linux)
//
// One lab (dsr, 3 healthy backends), clients loading vipgate with fresh connections the whole
// time, and vipgate run in alternating rounds with the same checks except the timeout (10 ms vs
// 100 ms by default). Every backend stays healthy, so every failed check is a false alarm and
// every health_down a false down. Prints both side by side. Not a test: it prints figures.
//
//   sudo node dist/bench/health-timeout.bench.js                 4 rounds x 30 s, interval 150 ms, fall 3
//   sudo node dist/bench/health-timeout.bench.js --rounds 2 --seconds 60 --timeouts 10,50,100 --concurrency 64 --json

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createLab, canRunLab } from '../scenarios/lab/lab';
import { startVipgate } from '../scenarios/lab/vipgate';

interface Round { timeoutMs: number; seconds: number; checks: number; failed: number; falseDowns: number; requests: number }

function metric(text: string, name: string, label: string): number {
  const m = new RegExp(`^${name}${label ? `\\{${label}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    rounds: { type: 'string' }, seconds: { type: 'string' }, timeouts: { type: 'string' }, interval: { type: 'string' },
    fall: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' },
  } });
  const can = canRunLab();
  if (!can.ok) { process.stderr.write(`health-timeout bench: needs root and network namespaces (${can.why})\n`); process.exit(2); }
  const rounds = Number(values.rounds ?? 4), seconds = Number(values.seconds ?? 30);
  const timeouts = (values.timeouts ?? '10,100').split(',').map(Number);
  const interval = Number(values.interval ?? 150), fall = Number(values.fall ?? 3), conc = String(Number(values.concurrency ?? 16));
  const lab = await createLab({ mode: 'dsr', clients: 2, backends: 3 });
  const loads: ChildProcess[] = [];
  const out: Round[] = [];
  try {
    // Load through vipgate all along: each client runs the lab's load generator, restarted
    // after each batch, --concurrency (16) connections in flight each.
    const loadJs = path.join(__dirname, '..', 'scenarios', 'lab', 'load.js');
    let loading = true;
    const keepLoading = (ns: string, url: string) => {
      const go = () => {
        if (!loading) return;
        const c = lab.spawn(ns, [process.execPath, loadJs, '--url', url, '--n', '20000', '--concurrency', conc, '--timeout-ms', '3000', '--exit-on-stdin-eof']);
        loads.push(c);
        c.on('exit', go);
      };
      go();
    };
    for (let r = 0; r < rounds; r++) {
      for (const timeoutMs of r % 2 ? [...timeouts].reverse() : timeouts) {
        const yaml = [
          `interface: ${lab.vipgateIf}`, 'mode: dsr', `vips: [${lab.addr.vips.join(', ')}]`,
          `health: { type: tcp, port: 80, interval: ${interval}ms, timeout: ${timeoutMs}ms, fall: ${fall}, rise: 2 }`,
          'backends:', ...lab.backendNames.map((n, i) => `  - { name: ${n}, ip: ${lab.addr.backends[i]} }`),
          'services:', `  - { vip: ${lab.addr.vips[0]}, backend: ${lab.backendNames[0]} }`,
          `  - { vip: ${lab.addr.vips[1]}, port: 80, active: ${lab.backendNames[1]}, standby: [${lab.backendNames[2]}] }`,
          'announce: { count: 2, interval: 200ms }', '',
        ].join('\n');
        const vg = await startVipgate(lab, yaml);
        if (loads.length === 0) { keepLoading('c1', lab.vipUrls[0]!); keepLoading('c2', lab.vipUrls[1]!); }
        await new Promise((res) => setTimeout(res, 1000)); // first checks done, JIT warm
        const m0 = vg.api('GET', '/metrics').text;
        const t0 = Date.now();
        await new Promise((res) => setTimeout(res, seconds * 1000));
        const m1 = vg.api('GET', '/metrics').text;
        const downs = vg.logRecords().filter((x) => x.event === 'health_down' && Date.parse(String(x.time)) >= t0).length;
        const d = (name: string, label: string) => metric(m1, name, label) - metric(m0, name, label);
        const round: Round = {
          timeoutMs, seconds,
          checks: d('vipgate_health_checks_total', 'result="ok"') + d('vipgate_health_checks_total', 'result="failed"'),
          failed: d('vipgate_health_checks_total', 'result="failed"'), falseDowns: downs,
          requests: d('vipgate_flows_created_total', ''),
        };
        out.push(round);
        await vg.stop();
        process.stderr.write(`round ${r + 1}: timeout ${timeoutMs} ms: ${round.checks} checks, ${round.failed} failed, ${round.falseDowns} false downs, ${round.requests} client connections\n`);
      }
    }
    loading = false;
  } finally {
    for (const c of loads) if (c.pid !== undefined && c.exitCode === null) { try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ } }
    lab.teardown();
  }
  const sum = (t: number) => {
    const x = out.filter((r) => r.timeoutMs === t);
    const checks = x.reduce((a, r) => a + r.checks, 0), failed = x.reduce((a, r) => a + r.failed, 0);
    return { timeoutMs: t, seconds: x.reduce((a, r) => a + r.seconds, 0), checks, failed, failedPct: checks ? (100 * failed) / checks : NaN,
      falseDowns: x.reduce((a, r) => a + r.falseDowns, 0), connPerSec: x.reduce((a, r) => a + r.requests, 0) / Math.max(1, x.reduce((a, r) => a + r.seconds, 0)) };
  };
  const table = timeouts.map(sum);
  if (values.json) { process.stdout.write(JSON.stringify({ interval, fall, rounds, seconds, table, out }, null, 2) + '\n'); return; }
  const lines = [`health-timeout bench: tcp checks of 3 healthy backends every ${interval} ms, fall ${fall}, under load through vipgate (2 clients x ${conc} connections in flight); ${rounds} alternating rounds of ${seconds} s per timeout`,
    'timeout   seconds   checks   failed   failed %   false downs   client conn/s'];
  for (const s of table) lines.push(`${String(s.timeoutMs).padStart(5)} ms ${String(s.seconds).padStart(9)} ${String(s.checks).padStart(8)} ${String(s.failed).padStart(8)} ${s.failedPct.toFixed(3).padStart(9)}% ${String(s.falseDowns).padStart(13)} ${s.connPerSec.toFixed(0).padStart(15)}`);
  const [a, b] = [table[0]!, table[table.length - 1]!];
  if (table.length >= 2) lines.push(`failed checks ${a.timeoutMs} ms / ${b.timeoutMs} ms: ${b.failed ? (a.failedPct / b.failedPct).toFixed(1) + 'x' : `${a.failed} vs 0`}; false downs ${a.falseDowns} vs ${b.falseDowns}`);
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => { process.stderr.write(`health-timeout bench: ${(e as Error).stack}\n`); process.exit(1); });

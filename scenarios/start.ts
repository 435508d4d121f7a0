// `npm start`: the main job. On Linux as root: build the namespace lab, start vipgate on the
// lab's NIC with the lab config, drive real HTTP clients through it, and show a live view that
// refreshes every second until Ctrl-C, then tear everything down. Without root: say so and run
// the replay demo instead.
//
//   npm start                       dsr lab
//   npm start -- --mode nat         nat lab
//   npm start -- --seconds 20       stop by itself after 20 s

import { parseArgs } from 'node:util';
import { createLab, canRunLab, httpLoad, Lab } from './lab/lab';
import { startVipgate, labConfigYaml, VipgateProc } from './lab/vipgate';
import type { CounterSnapshot } from '../src/dataplane/counters';
import { formatCounters } from '../src/obs/format';
import { formatTable, wrapList } from '../src/cli/table';
import type { BackendView } from '../src/control/api-types';

export type Status = CounterSnapshot & { time: number; mode: string; interface: string; vips: string[]; backends: BackendView[] };

export interface ClientStats { ok: number; failed: number; byBody: Record<string, number>; connectMs: number[]; errors: Record<string, number> }

function usage(msg: string): never {
  process.stderr.write(`npm start: ${msg}\nusage: npm start [-- --mode dsr|nat] [--seconds N]\n`);
  process.exit(2);
}

/** The view's width: a classic terminal's (the view is redrawn whole every second). */
export const VIEW_WIDTH = 80;

/**
 * One frame of the live view, every line within VIEW_WIDTH columns. Figures "now" are per second
 * over the last second (or the last batch of client requests); "total" ones count since start.
 */
export function render(lab: Lab, vg: Pick<VipgateProc, 'pid' | 'apiAddr'>, st: Status | null, prev: Status | null, clients: Map<string, ClientStats>, started: number): string {
  const L: string[] = [];
  const secs = st && prev ? Math.max(0.001, (st.time - prev.time) / 1000) : 1;
  const now = (cur: number, was: number | undefined) => (prev && was !== undefined ? String(Math.max(0, Math.round((cur - was) / secs))) : '-');
  const vgNs = lab.ns.vipgate;
  L.push(`vipgate lab (${lab.mode}) ${lab.prefix}, up ${((Date.now() - started) / 1000).toFixed(0)} s; Ctrl-C stops it and removes the lab`);
  L.push(`vipgate  pid ${vg.pid} on ${vgNs}:eth0 ${lab.addr.vipgate}, mac ${lab.mac.vipgate}`);
  L.push(`API      ${vg.apiAddr} inside ${vgNs}; from another shell (as root):`);
  L.push(`  ip netns exec ${vgNs} ./bin/vipgate.js top   (or backends, ...)`);
  const [v1, v2] = lab.addr.vips;
  L.push(`VIPs     ${v1}  IP mode -> ${lab.backendNames[0]}`);
  if (v2) L.push(`         ${v2}:${lab.httpPort}  port mode -> ${lab.backendNames[1]}, standby ${lab.backendNames.slice(2).concat(lab.backendNames[0]!).join(', ')}`);
  if (lab.addr.gateway) L.push(`gateway  ${lab.addr.gateway} (nat: the backends' default route; vipgate answers ARP)`);
  L.push('');
  const answers: Record<string, number> = {};
  for (const c of clients.values()) for (const [k, n] of Object.entries(c.byBody)) answers[k] = (answers[k] ?? 0) + n;
  L.push(...formatTable(
    ['BACKEND', 'ADDRESS', 'STATE', 'MAC (SOURCE)', 'FLOWS NOW', 'ANSWERED TOTAL'],
    (st?.backends ?? []).map((b) => [b.name, b.ip, b.state, b.mac ? `${b.mac} (${b.macSource})` : 'unresolved', b.flows, answers[b.name] ?? 0]),
    { align: ['left', 'left', 'left', 'left', 'right', 'right'] },
  ).split('\n'));
  L.push('');
  if (st) {
    const c = st.counters;
    const p = prev?.counters;
    const drops = Object.entries(st.drops).filter(([, n]) => n > 0);
    const dropsTotal = drops.reduce((a, [, n]) => a + n, 0);
    const dropsBefore = prev ? Object.values(prev.drops).reduce((a, n) => a + n, 0) : undefined;
    L.push(...formatTable(['', 'NOW /S', 'TOTAL SINCE START'], [
      ['packets in', now(c.frames_in, p?.frames_in), c.frames_in],
      ['packets out', now(c.frames_out, p?.frames_out), c.frames_out],
      ['new flows', now(c.flows_created, p?.flows_created), c.flows_created],
      ['ARP replies', now(c.arp_replies, p?.arp_replies), c.arp_replies],
      ['gratuitous ARP', now(c.garp_sent, p?.garp_sent), c.garp_sent],
      ...(lab.mode === 'nat' ? [['nat replies', now(c.forwarded_to_client, p?.forwarded_to_client), c.forwarded_to_client]] : []),
      ['drops', now(dropsTotal, dropsBefore), dropsTotal],
    ], { align: ['left', 'right', 'right'] }).split('\n'));
    if (drops.length) {
      L.push(...wrapList('drops now /s (total):', drops.map(([k, n]) => `${k} ${now(n, (prev?.drops as Record<string, number> | undefined)?.[k])} (${n})`), VIEW_WIDTH));
    }
    L.push(`flows active now ${c.flows_active}`);
  } else {
    L.push('waiting for vipgate\'s first status...');
  }
  L.push('');
  L.push(...formatTable(['CLIENT', 'OK TOTAL', 'FAILED TOTAL', 'CONNECT MS P50/P99 NOW'], [...clients].map(([name, c]) => {
    const xs = c.connectMs.slice().sort((a, b) => a - b);
    const q = (f: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(f * xs.length))]!.toFixed(2) : '-');
    return [name, c.ok, c.failed, `${q(0.5)}/${q(0.99)}`];
  }), { align: ['left', 'right', 'right', 'left'] }).split('\n'));
  for (const [name, c] of clients) {
    const errs = Object.entries(c.errors).map(([e, n]) => `${e} x${n}`).join(', ');
    if (errs) L.push(`errors ${name}: ${errs}`);
  }
  L.push('("now": the last second, or the clients\' last batch; "total": since start)');
  return L.map((l) => (l.length <= VIEW_WIDTH ? l : l.slice(0, VIEW_WIDTH - 1) + '…')).join('\n');
}

async function runLab(mode: 'dsr' | 'nat', seconds: number): Promise<void> {
  const started = Date.now();
  process.stdout.write(`building the ${mode} lab (network namespaces, a bridge, ${3} backends with HTTP servers)...\n`);
  const lab = await createLab({ mode, clients: 2, backends: 3 });
  let vg: VipgateProc | null = null;
  let stopping = false;
  const clients = new Map<string, ClientStats>();
  const loops: Promise<void>[] = [];
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${why}: stopping clients, vipgate, and tearing the lab down...\n`);
    await Promise.allSettled(loops);
    if (vg) {
      const r = await vg.stop();
      // From the status file vipgate writes at exit: the lab's own signal hook may already have
      // closed vipgate's stderr pipe.
      if (r.status) process.stdout.write(`vipgate exited (${r.code ?? 'signal'}); its counters:\n${formatCounters(r.status)}\n`);
    }
    lab.teardown();
    process.stdout.write('lab removed.\n');
  };
  process.once('SIGINT', () => void stop('Ctrl-C').then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));
  try {
    vg = await startVipgate(lab, labConfigYaml(lab));
    // Clients: c1 -> VIP 1 (IP mode), c2 -> VIP 2 (port mode), batches of fresh connections.
    const plan: Array<[string, string]> = [['c1', lab.vipUrls[0]!], ['c2', lab.vipUrls[1]!]];
    for (const [ns, url] of plan) {
      const c: ClientStats = { ok: 0, failed: 0, byBody: {}, connectMs: [], errors: {} };
      clients.set(`${ns} -> ${url.replace('http://', '').replace(/\/$/, '')}`, c);
      loops.push((async () => {
        while (!stopping) {
          const r = await httpLoad(lab, ns, url, 200, { concurrency: 4, timeoutMs: 3000 }).catch(() => null);
          if (!r) continue;
          c.ok += r.ok; c.failed += r.failed; c.connectMs = r.latenciesMs;
          for (const [k, n] of Object.entries(r.byBody)) c.byBody[k] = (c.byBody[k] ?? 0) + n;
          for (const e of r.errors) { const m = /^(.*) x(\d+)$/.exec(e); if (m) c.errors[m[1]!] = (c.errors[m[1]!] ?? 0) + Number(m[2]); }
        }
      })());
    }
    let prev: Status | null = null;
    const tty = process.stdout.isTTY;
    while (!stopping) {
      await new Promise((r) => setTimeout(r, 1000));
      if (stopping) break;
      const st = vg.status() as Status | null;
      const view = render(lab, vg, st, prev, clients, started);
      process.stdout.write(tty ? `\x1b[H\x1b[2J${view}\n` : `${view}\n\n`);
      if (st) prev = st;
      if (seconds > 0 && Date.now() - started > seconds * 1000) await stop(`${seconds} s elapsed`);
    }
  } catch (e) {
    await stop('error');
    throw e;
  }
}

async function main(): Promise<void> {
  let values: { mode?: string; seconds?: string };
  try {
    values = parseArgs({ args: process.argv.slice(2), options: { mode: { type: 'string' }, seconds: { type: 'string' } }, strict: true }).values;
  } catch (e) { usage((e as Error).message); }
  const mode = values.mode ?? 'dsr';
  if (mode !== 'dsr' && mode !== 'nat') usage(`--mode is dsr or nat, not "${mode}"`);
  const seconds = values.seconds === undefined ? 0 : Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 0) usage(`--seconds takes a number, not "${values.seconds}"`);
  const can = canRunLab();
  let capOk = true;
  try { require('cap'); } catch { capOk = false; }
  if (!can.ok || !capOk) {
    process.stdout.write(
      `npm start builds a network-namespace lab and runs vipgate live in it; that needs Linux, root and libpcap ` +
      `(${!can.ok ? can.why : 'the libpcap binding is not built: apt-get install -y libpcap-dev g++ make python3 && npm install'}).\n` +
      `Run it as root (sudo npm start) for the live lab. Showing the replay demo instead, which needs no privileges:\n\n`);
    require('./replay-demo');
    return;
  }
  await runLab(mode, seconds);
}

if (require.main === module) main().catch((e) => { process.stderr.write(`npm start: ${e instanceof Error ? e.message : String(e)}\n`); process.exit(1); });

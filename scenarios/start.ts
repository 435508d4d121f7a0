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
import type { BackendView } from '../src/control/api-types';

type Status = CounterSnapshot & { time: number; mode: string; interface: string; vips: string[]; backends: BackendView[] };

interface ClientStats { ok: number; failed: number; byBody: Record<string, number>; connectMs: number[]; errors: Record<string, number> }

function usage(msg: string): never {
  process.stderr.write(`npm start: ${msg}\nusage: npm start [-- --mode dsr|nat] [--seconds N]\n`);
  process.exit(2);
}

function render(lab: Lab, vg: VipgateProc, st: Status | null, prev: Status | null, clients: Map<string, ClientStats>, started: number): string {
  const L: string[] = [];
  const secs = st && prev ? Math.max(0.001, (st.time - prev.time) / 1000) : 1;
  const rate = (k: keyof Status['counters']) => (st && prev ? ((st.counters[k] - prev.counters[k]) / secs).toFixed(0) : '-');
  L.push(`vipgate lab (${lab.mode}) — ${lab.prefix}, up ${((Date.now() - started) / 1000).toFixed(0)} s — Ctrl-C to stop and tear down`);
  L.push('');
  L.push(`vipgate  ${lab.addr.vipgate} on ${lab.ns.vipgate}:eth0, mac ${lab.mac.vipgate}, pid ${vg.proc.pid}`);
  L.push(`VIPs     ${lab.addr.vips.map((v, i) => `${v} (${i === 0 ? `IP mode -> ${lab.backendNames[0]}` : `port ${lab.httpPort} -> ${lab.backendNames[1]}, standby ${lab.backendNames.slice(2).concat(lab.backendNames[0]!).join(', ')}`})`).join('   ')}`);
  if (lab.addr.gateway) L.push(`gateway  ${lab.addr.gateway} (nat: backends route through it; vipgate answers ARP for it)`);
  L.push('');
  L.push('backend  address       state  mac (source)                 flows   answers');
  const answers: Record<string, number> = {};
  for (const c of clients.values()) for (const [k, n] of Object.entries(c.byBody)) answers[k] = (answers[k] ?? 0) + n;
  for (const b of st?.backends ?? []) {
    L.push(`${b.name.padEnd(8)} ${b.ip.padEnd(13)} ${b.state.padEnd(6)} ${(b.mac ? `${b.mac} (${b.macSource})` : 'unresolved').padEnd(28)} ${String(b.flows).padStart(5)}   ${answers[b.name] ?? 0}`);
  }
  L.push('');
  if (st) {
    const c = st.counters;
    L.push(`packets/s  in ${rate('frames_in').padStart(7)}   out ${rate('frames_out').padStart(7)}   new flows/s ${rate('flows_created').padStart(6)}   flows active ${c.flows_active}`);
    L.push(`totals     in ${c.frames_in}   out ${c.frames_out}   flows ${c.flows_created}   ARP replies ${c.arp_replies}   gratuitous ARP ${c.garp_sent}   nat replies ${c.forwarded_to_client}`);
    const drops = Object.entries(st.drops).filter(([, n]) => n > 0);
    const dRate = drops.map(([k, n]) => `${k} ${n}${prev ? ` (+${((n - (prev.drops as Record<string, number>)[k]!) / secs).toFixed(0)}/s)` : ''}`);
    L.push(`drops      ${dRate.length ? dRate.join(', ') : 'none'}`);
  } else {
    L.push('waiting for vipgate\'s first status...');
  }
  L.push('');
  L.push('client   requests ok   failed   connect p50/p99 ms (last batch)');
  for (const [ns, c] of clients) {
    const xs = c.connectMs.slice().sort((a, b) => a - b);
    const p = (q: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!.toFixed(2) : '-');
    const errs = Object.entries(c.errors).map(([e, n]) => `${e} x${n}`).join(', ');
    L.push(`${ns.padEnd(8)} ${String(c.ok).padStart(11)}   ${String(c.failed).padStart(6)}   ${p(0.5)}/${p(0.99)}${errs ? `   ${errs}` : ''}`);
  }
  return L.join('\n');
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
      `(${!can.ok ? can.why : 'the libpcap binding is not built: apt-get install -y libpcap-dev && npm rebuild cap'}).\n` +
      `Run it as root (sudo npm start) for the live lab. Showing the replay demo instead, which needs no privileges:\n\n`);
    require('./replay-demo');
    return;
  }
  await runLab(mode, seconds);
}

main().catch((e) => { process.stderr.write(`npm start: ${e instanceof Error ? e.message : String(e)}\n`); process.exit(1); });

// Cluster takeover benchmark (issue 11; root, Linux): what the death of the owning node costs
// clients, side by side in one run, in the same three-node namespace lab (createLab({ nodes: 3 }):
// lb1 owns, lb2 is next, lb3 last), with the same backends and the same client traffic, for:
//
//   vipgate            three vipgate nodes with a `cluster:` section at the defaults
//                      (heartbeat 100ms, dead_after 400ms, preempt on)
//   vipgate-fast       the same at heartbeat 10ms, dead_after 30ms (VRRP's 3 x advert at its
//                      fastest): what vipgate does at keepalived-fast's rate
//   keepalived         Debian's keepalived, VRRP only, at its default advert_int 1 (VRRPv2)
//   keepalived-fast    the same at its fastest setting: VRRPv3, advert_int 0.01 (one centisecond)
//
// keepalived moves the VIPs (and in nat the backends' gateway) between the nodes' kernels, which
// forward: nat with nftables DNAT, dsr with an nftables netdev-ingress MAC rewrite
// (scenarios/lab/keepalived.ts says why). No conntrackd: the stock VRRP pair.
//
// Each round: all three nodes start, lb1 owns; a client holds the continuity workload (paced
// downloads checked byte for byte, keep-alive connections; scenarios/lab/continuity.ts) through
// both VIPs and, from a second client, opens a fresh connection to VIP 1 every --probe-ms
// (open loop); after a lead-in, lb1 is SIGKILLed (vipgate: supervisor and packet worker;
// keepalived: its processes, with the node's kernel forwarding removed at the same instant, as
// when the box dies). Reported per system and mode over --rounds rounds: the time from the kill
// to the first probe answered after it (a probe started after the kill that connected: only the
// new owner can have forwarded it), and the connections of the workload broken (reset, stalled,
// wrong bytes, not completed). Medians, with min..max. Not a test: it prints figures; a smoke run
// on a loaded machine says little, final figures come from a quiet one.
//
//   npm run bench:cluster                                   5 rounds, nat and dsr, all three systems
//   node dist/bench/cluster.bench.js --rounds 1 --modes dsr --systems keepalived-fast --json

import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import { createLab, canRunLab, arpProbe, canProbeArp, httpGetIn, type Lab, type LabMode } from '../scenarios/lab/lab';
import { VIPGATE_BIN } from '../scenarios/lab/vipgate';
import { startPacedLoad } from '../scenarios/lab/failover';
import { startContinuityServers, startWorkload, summarize, connTable, CONTINUITY_PORT } from '../scenarios/lab/continuity';
import {
  clusterConfigYaml, clusterView, killNode, removeLeftovers, routeNodesToBackends, startNode, writeClusterKey, clusterSupport, type ClusterNode, type ClusterSettings,
} from '../scenarios/lab/cluster';
import { ensureKeepalived, startKeepalived, VRRP_DEFAULT, VRRP_FASTEST, type KeepalivedNode, type VrrpTiming } from '../scenarios/lab/keepalived';

const SYSTEMS = ['vipgate', 'vipgate-fast', 'keepalived', 'keepalived-fast'] as const;
type System = (typeof SYSTEMS)[number];

interface Round {
  /** ms from the kill to the first answered probe started after it; null: none within the window. */
  takeoverMs: number | null;
  probesFailed: number;
  broken: number;
  conns: number;
  /** Which node answered ARP for VIP 1 afterwards (lb2 expected). */
  newOwner: string;
  /** Ownership changes between the steady state and the kill (a false takeover under load); null: not known. */
  flaps: number | null;
  /** At the kill, a client's ARP cache had a VIP on a node other than lb1 (its traffic did not go through the owner). */
  stale: boolean;
  brokenDetail: string;
}

interface Outcome { system: System; mode: LabMode; why: string | null; rounds: Round[] }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEAD_MS = 2000;
const STREAMS = 4, KEEPALIVES = 4;

/** How long after the kill a round waits before it stops probing: the takeover must fit in it. */
const windowMs = (s: System): number => (s === 'keepalived' ? 7000 : 4000);

interface Plant {
  /** Kill the owner (lb1); returns the time of the kill. */
  killOwner(): Promise<number>;
  /** Ownership changes so far over all nodes (vipgate: takeovers and releases in GET /v1/cluster); null where not known. */
  changes(): number | null;
  stop(): Promise<void>;
}

async function startVipgatePlant(lab: Lab, keyFile: string, s: ClusterSettings): Promise<Plant> {
  const nodes: ClusterNode[] = [];
  try {
    routeNodesToBackends(lab, true);
    for (let i = 0; i < lab.ns.nodes.length; i++) nodes.push(await startNode(lab, i, clusterConfigYaml(lab, i, keyFile, s)));
  } catch (e) {
    for (const n of nodes) await n.vg?.stop();
    routeNodesToBackends(lab, false);
    throw e;
  }
  return {
    killOwner: () => killNode(nodes[0]!),
    changes: () => nodes.reduce((a, n) => { const k = n.vg ? clusterView(n.vg).counters : undefined; return a + (k ? k.takeovers + k.releases : 0); }, 0),
    async stop() { for (const n of nodes) await n.vg?.stop(); routeNodesToBackends(lab, false); removeLeftovers(lab); },
  };
}

async function startKeepalivedPlant(lab: Lab, bin: string, t: VrrpTiming): Promise<Plant> {
  const nodes: KeepalivedNode[] = [];
  try {
    for (let i = 0; i < lab.ns.nodes.length; i++) nodes.push(await startKeepalived(lab, bin, i, t));
    const until = Date.now() + 10_000;
    while (!nodes[0]!.isMaster()) {
      if (Date.now() > until) throw new Error(`keepalived on lb1 did not become master within 10 s:\n${nodes[0]!.log().slice(-2000)}`);
      await sleep(50);
    }
  } catch (e) {
    for (const n of nodes) await n.stop();
    throw e;
  }
  return {
    killOwner: () => nodes[0]!.kill(),
    changes: () => null,
    async stop() { for (const n of nodes) await n.stop(); },
  };
}

/** The MAC namespace ns's kernel has cached for ip (lower case), or null. */
function neighbourMac(lab: Lab, ns: string, ip: string): string | null {
  const m = /lladdr ([0-9a-f:]{17})/i.exec(lab.exec(ns, ['ip', 'neigh', 'show', ip]).stdout);
  return m ? m[1]!.toLowerCase() : null;
}

/** Which lab node (lb1..) answers ARP for ip, as the client sees it now; 'none' or 'lbX+lbY' otherwise. */
async function arpOwner(lab: Lab, ip: string): Promise<string> {
  const r = await arpProbe(lab, lab.ns.clients[0]!, ip, 2, { intervalMs: 100, waitMs: 300 });
  const names = r.macs.map((m) => { const i = lab.mac.nodes.indexOf(m); return i >= 0 ? `lb${i + 1}` : m; });
  return names.length ? names.sort().join('+') : 'none';
}

async function runRound(lab: Lab, system: System, plantOf: () => Promise<Plant>, probeMs: number, log: (s: string) => void): Promise<Round> {
  const plant = await plantOf();
  try {
    // Steady state: lb1 alone answers ARP for VIP 1, and both VIPs serve.
    const until = Date.now() + 10_000;
    for (;;) {
      const o = await arpOwner(lab, lab.addr.vips[0]!);
      if (o === 'lb1') break;
      if (Date.now() > until) throw new Error(`before the kill, VIP 1 is answered by ${o}, not lb1 alone`);
      await sleep(200);
    }
    for (const v of lab.addr.vips) for (const c of lab.ns.clients) httpGetIn(lab, c, `http://${v}:${CONTINUITY_PORT}/ping`);
    const steady = plant.changes();
    const win = windowMs(system);
    const seconds = (LEAD_MS + win) / 1000 + 2;
    const bytes = 256 * 1024;
    const w = await startWorkload(lab, { streams: STREAMS, keepalives: KEEPALIVES, streamBytes: bytes, rate: Math.ceil(bytes / seconds), intervalMs: 500, stallMs: 15_000 });
    try {
      const probe = startPacedLoad(lab, lab.ns.clients[1]!, `http://${lab.addr.vips[0]}:${lab.httpPort}/`,
        { rate: 1000 / probeMs, durationMs: LEAD_MS + win, timeoutMs: 900 });
      await sleep(LEAD_MS);
      const lead = plant.changes();
      const flaps = steady === null || lead === null ? null : lead - steady;
      // What the clients' kernels will send to at the kill: lb1's MAC, or the round says nothing about lb1's death.
      const stale = lab.ns.clients.some((c) => lab.addr.vips.some((v) => neighbourMac(lab, c, v) !== lab.mac.nodes[0]));
      const killAt = await plant.killOwner();
      const r = await probe;
      const after = r.records.filter((x) => x.at >= killAt);
      const ok = after.filter((x) => x.ok).map((x) => x.at + x.connectMs - killAt);
      const s = summarize(await w.finish(60_000));
      const newOwner = await arpOwner(lab, lab.addr.vips[0]!);
      log(`${system} ${lab.mode}: takeover ${ok.length ? Math.min(...ok).toFixed(1) : '-'} ms, broken ${s.broken.length}/${STREAMS + KEEPALIVES}, VIP 1 now on ${newOwner}` +
        (flaps ? `, ${flaps} ownership changes before the kill (a false takeover: this round's takeover time means nothing)` : '') +
        (stale ? ', a client\'s ARP cache had a VIP elsewhere than lb1 at the kill (left out)' : '') +
        (s.broken.length ? `\n${connTable(s.broken)}` : ''));
      return {
        takeoverMs: ok.length ? Math.min(...ok) : null,
        probesFailed: after.filter((x) => !x.ok).length,
        broken: s.broken.length, conns: STREAMS + KEEPALIVES, newOwner, flaps, stale,
        brokenDetail: connTable(s.broken),
      };
    } finally {
      w.kill();
    }
  } finally {
    await plant.stop();
  }
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function table(outs: Outcome[], o: { rounds: number; probeMs: number }): string {
  const f = (x: number, d = 0) => (Number.isNaN(x) ? '-' : x.toFixed(d));
  const lines = [
    `cluster takeover bench: three nodes on one segment, owner lb1 SIGKILLed under load; ${o.rounds} round(s); a fresh connection to VIP 1 every ${o.probeMs} ms;`,
    `${STREAMS} paced downloads + ${KEEPALIVES} keep-alive connections held across the kill. takeover = kill -> first probe answered (ms): median (min..max)`,
    'mode  system            takeover ms (min..max)        broken conns (median, total/of)   new owner  left out (false takeover / stale cache)',
  ];
  for (const x of outs) {
    if (x.why) { lines.push(`${x.mode.padEnd(5)} ${x.system.padEnd(17)} not run: ${x.why}`); continue; }
    // A round with a false takeover before the kill measures nothing about the kill: left out of the times.
    const clean = x.rounds.filter((r) => !r.flaps && !r.stale);
    const t = clean.map((r) => r.takeoverMs).filter((v): v is number => v !== null);
    const none = clean.length - t.length;
    const br = x.rounds.map((r) => r.broken);
    const owners = [...new Set(x.rounds.map((r) => r.newOwner))].join(',');
    lines.push(`${x.mode.padEnd(5)} ${x.system.padEnd(17)} ${`${f(median(t))} (${f(Math.min(...t))}..${f(Math.max(...t))})${none ? ` +${none} none` : ''}`.padEnd(29)} ` +
      `${`${f(median(br))}, ${br.reduce((a, b) => a + b, 0)}/${x.rounds.reduce((a, r) => a + r.conns, 0)}`.padEnd(33)} ${owners.padEnd(10)} ` +
      `${x.rounds.some((r) => r.flaps === null) ? '-' : x.rounds.filter((r) => r.flaps! > 0).length} / ${x.rounds.filter((r) => r.stale).length} of ${x.rounds.length}`);
  }
  // Side by side: keepalived at its default against vipgate at its default, and each fast setting against the other.
  const med = (x: Outcome) => median(x.rounds.filter((r) => !r.flaps && !r.stale).map((r) => r.takeoverMs).filter((v): v is number => v !== null));
  const brokenOf = (x: Outcome) => x.rounds.reduce((a, r) => a + r.broken, 0);
  for (const mode of [...new Set(outs.map((x) => x.mode))]) {
    for (const [a, b] of [['keepalived', 'vipgate'], ['keepalived-fast', 'vipgate-fast'], ['keepalived-fast', 'vipgate']] as const) {
      const x = outs.find((y) => y.mode === mode && y.system === a && !y.why), ref = outs.find((y) => y.mode === mode && y.system === b && !y.why);
      if (!x || !ref) continue;
      lines.push(`${mode}: ${a} / ${b}: takeover x${med(ref) > 0 ? (med(x) / med(ref)).toFixed(2) : '-'}, broken ${brokenOf(x)} vs ${brokenOf(ref)}`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    rounds: { type: 'string' }, modes: { type: 'string' }, systems: { type: 'string' }, 'probe-ms': { type: 'string' }, json: { type: 'boolean' },
  } });
  const fail = (m: string): never => { process.stderr.write(`cluster bench: ${m}\n`); process.exit(2); };
  const can = canRunLab();
  if (!can.ok) fail(`needs root and network namespaces (${can.why})`);
  const arp = canProbeArp();
  if (!arp.ok) fail(arp.why);
  if (!fs.existsSync(VIPGATE_BIN)) fail(`${VIPGATE_BIN} is missing`);
  const rounds = Number(values.rounds ?? 5);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) fail(`--rounds must be an integer 1..100, got ${values.rounds}`);
  const probeMs = Number(values['probe-ms'] ?? 5);
  if (!(probeMs >= 1 && probeMs <= 1000)) fail(`--probe-ms must be 1..1000, got ${values['probe-ms']}`);
  const modes = (values.modes ?? 'nat,dsr').split(',').map((x) => x.trim()) as LabMode[];
  if (modes.some((m) => m !== 'nat' && m !== 'dsr')) fail(`--modes takes nat and/or dsr, got ${values.modes}`);
  const systems = (values.systems ? values.systems.split(',').map((x) => x.trim()) : [...SYSTEMS]) as System[];
  const bad = systems.filter((x) => !SYSTEMS.includes(x));
  if (bad.length) fail(`unknown system ${bad.join(', ')}; choose from ${SYSTEMS.join(', ')}`);
  const log = (x: string) => process.stderr.write(`cluster bench: ${x}\n`);
  const kaBin = systems.some((x) => x.startsWith('keepalived')) ? ensureKeepalived(log) : null;
  const key = writeClusterKey();
  const outs: Outcome[] = [];
  try {
    for (const mode of modes) {
      const lab = await createLab({ mode, nodes: 3, clients: 2, backends: 3 });
      try {
        await startContinuityServers(lab);
        for (const system of systems) {
          const out: Outcome = { system, mode, why: null, rounds: [] };
          outs.push(out);
          let plantOf: () => Promise<Plant>;
          if (system.startsWith('vipgate')) {
            const why = await clusterSupport(lab);
            if (why) { out.why = why; continue; }
            const s: ClusterSettings = system === 'vipgate' ? {} : { heartbeat: '10ms', deadAfter: '30ms' };
            plantOf = () => startVipgatePlant(lab, key.file, s);
          } else {
            if (!kaBin) { out.why = 'keepalived is not installed and could not be installed'; continue; }
            const t = system === 'keepalived' ? VRRP_DEFAULT : VRRP_FASTEST;
            plantOf = () => startKeepalivedPlant(lab, kaBin, t);
          }
          for (let r = 0; r < rounds; r++) {
            try {
              out.rounds.push(await runRound(lab, system, plantOf, probeMs, log));
            } catch (e) {
              // One system failing must not lose the others' figures.
              out.why = `round ${r + 1} failed: ${(e as Error).message.split('\n').slice(0, 3).join(' ').slice(0, 300)}`;
              break;
            }
          }
        }
      } finally {
        lab.teardown();
      }
    }
  } finally {
    key.remove();
  }
  process.stdout.write(values.json ? JSON.stringify({ rounds, probeMs, outcomes: outs }) + '\n' : table(outs, { rounds, probeMs }) + '\n');
}

main().catch((e) => { process.stderr.write(`cluster bench: ${(e as Error).stack}\n`); process.exit(1); });

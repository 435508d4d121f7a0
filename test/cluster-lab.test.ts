// Issue 11's lab checks: three vipgate nodes on one segment (createLab({ nodes: 3 }): lb-1 at
// 10.77.0.2 first in priority, lb-2, lb-3), real clients holding long-lived connections
// (scenarios/lab/continuity.ts: paced downloads checked byte for byte, keep-alive connections)
// through both VIPs, real backends. One lab per mode, the nodes reused from step to step:
//   nat  1. SIGKILL the owner: its VIPs and the backends' gateway move to lb-2, every connection
//           continues; lb-1 restarted (preempt on) takes them back once synced: zero broken.
//        2. cut the owner's link, then 3. freeze it (SIGSTOP): connections continue through lb-2;
//           restored / thawed, lb-1 takes the VIPs back: zero broken over the whole step. How long
//           two nodes answer after the restore and the thaw is measured and bounded as in 4 (the
//           restore needs the runtime to clear the kernel's neighbour entry: see README, Known limits).
//        4. partition the heartbeat path (lb-1 | lb-2, lb-3; the data path untouched: both sides
//           answer ARP), then heal: ARP probes every 20 ms from a client show no request answered
//           by two nodes for longer than one heartbeat (+ slack) after the heal; the split brain
//           is counted (again: these two nodes split at the link cut already); clients reach the VIPs.
//        5. real heartbeats and replication messages recorded off the wire (checked genuine),
//           replayed byte for byte, with a bit flipped, cut short, re-signed fresh with a wrong
//           key, one in lb-3's name: no owner moves, lb-2 still sees its peers alive, and its
//           rejected counters rise by what was sent, by reason.
//        6. preempt off (all nodes restarted so): the owner killed, lb-2 takes over; lb-1 back
//           does not take the VIPs back.
//   dsr  the owner SIGKILLed: every connection continues through lb-2.
// Ownership is read where clients see it: which node's MAC answers ARP for a VIP. Needs root,
// network namespaces, libpcap and a vipgate with the cluster runtime (GET /v1/cluster); skipped
// with the missing piece named otherwise.

import t, { type Test } from 'tap';
import { createLab, arpProbe, canProbeArp, httpGetIn, type Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab } from '../scenarios/lab/vipgate';
import { allMove, startContinuityServers, startWorkload, summarize, connTable, CONTINUITY_PORT, type Workload } from '../scenarios/lab/continuity';
import {
  clusterConfigYaml, clusterSupport, freezeNode, heal, killNode, partition, routeNodesToBackends, setNodeLink, startNode,
  writeClusterKey, nodeName, rejectedTotal, clusterView, peerState, viewOwners, type ClusterNode, type ClusterSettings,
} from '../scenarios/lab/cluster';
import { captureCluster, flipBit, injectFrames, payloadOf, resign, withPayload, MSG_FLOWS, MSG_HEARTBEAT } from '../scenarios/lab/cluster-wire';
import { decode } from '../src/control/cluster/wire';
import type { EventPage } from '../src/control/api-types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HEARTBEAT_MS = 100;
/** How long a takeover or a return may take here before the test calls it failed (the goal is 500 ms; the machine is shared). */
const MOVE_MS = 8000;
/** The most a connection may stand still after an event (TCP's backoff after the outage included). */
const RESUME_MS = 15_000;
/** Slack over one heartbeat for the split-brain bound: the probe's and the nodes' scheduling on a loaded 2-core machine. */
const SPLIT_SLACK_MS = 250;

const can = canRunVipgateLab();
const arp = canProbeArp();

/** Which nodes answer ARP for ip as client namespace ns sees it: their indexes, sorted ([] none; -1 a MAC that is no node's). */
async function answering(lab: Lab, ns: string, ip: string): Promise<number[]> {
  const r = await arpProbe(lab, ns, ip, 2, { intervalMs: 100, waitMs: 250 });
  return r.macs.map((m) => lab.mac.nodes.indexOf(m)).sort();
}

/** Waits until exactly node i answers ARP for every address in ips (from the namespace given for each); returns the ms it took. */
async function waitOwner(lab: Lab, i: number, ips: Array<[ns: string, ip: string]>, timeoutMs = MOVE_MS): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const seen = await Promise.all(ips.map(([ns, ip]) => answering(lab, ns, ip)));
    if (seen.every((s) => s.length === 1 && s[0] === i)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`after ${timeoutMs} ms ${nodeName(i)} is not the only node answering ARP: ` +
        ips.map(([, ip], k) => `${ip}: ${seen[k]!.map((x) => (x < 0 ? 'not a node' : nodeName(x))).join('+') || 'nobody'}`).join(', '));
    }
    await sleep(100);
  }
}

/**
 * Runs `event` (a heal) while a client sends an ARP request for ip every 20 ms; returns how long
 * after the event the last request answered by two nodes was sent (-1: none), and who answered
 * the last ten requests.
 */
async function splitAfter(lab: Lab, ip: string, event: () => void): Promise<{ lastDoubleMs: number; tail: string[][] }> {
  const probe = arpProbe(lab, lab.ns.clients[0]!, ip, 100, { intervalMs: 20, waitMs: 300 });
  await sleep(600);
  const at = Date.now();
  event();
  const r = await probe;
  const doubled = r.sentAt.map((s, k) => [s - at, r.macsPerRequest[k]!.length] as const).filter(([dt, n]) => n >= 2 && dt >= 0);
  if (!r.sentAt.some((s) => s > at + 500)) throw new Error('the ARP probe stopped before it could watch the heal');
  return { lastDoubleMs: doubled.length ? Math.max(...doubled.map(([dt]) => dt)) : -1, tail: r.macsPerRequest.slice(-10) };
}

/** A workload sized to last about `seconds` (downloads paced to end then), checked at the end: zero broken. */
async function withWorkload(t: Test, lab: Lab, seconds: number, what: string, fn: (w: Workload) => Promise<void>): Promise<void> {
  const bytes = 384 * 1024;
  const w = await startWorkload(lab, { streams: 4, keepalives: 4, streamBytes: bytes, rate: Math.ceil(bytes / seconds), intervalMs: 500, stallMs: 20_000 });
  try {
    await sleep(500);
    await fn(w);
    const s = summarize(await w.finish(60_000));
    t.equal(s.broken.length, 0, `${what}: no broken connection (longest wait ${s.longestWaitMs} ms)\n${connTable(s.broken)}`);
    t.equal(s.streams.bytes, s.streams.expected, `${what}: every byte arrived (${s.streams.bytes} of ${s.streams.expected})`);
  } finally {
    w.kill();
  }
}

interface Cluster { lab: Lab; nodes: ClusterNode[]; keyFile: string; key: Buffer; settings: ClusterSettings }

async function startAll(c: Cluster): Promise<void> {
  for (let i = 0; i < c.nodes.length; i++) {
    if (c.nodes[i]!.vg) continue;
    c.nodes[i] = await startNode(c.lab, i, clusterConfigYaml(c.lab, i, c.keyFile, c.settings));
  }
}

async function restartNode(c: Cluster, i: number): Promise<void> {
  c.nodes[i] = await startNode(c.lab, i, clusterConfigYaml(c.lab, i, c.keyFile, c.settings));
}

async function stopAll(c: Cluster): Promise<void> {
  for (const n of c.nodes) { await n.vg?.stop(); n.vg = null; }
}

/** Every address a node owns, with where it is asked from: the VIPs by the client, the nat gateway by a backend. */
function owned(lab: Lab): Array<[string, string]> {
  return [
    ...lab.addr.vips.map((v): [string, string] => [lab.ns.clients[0]!, v]),
    ...(lab.addr.gateway ? [[lab.ns.backends[0]!, lab.addr.gateway] as [string, string]] : []),
  ];
}

async function setUp(t: Test, mode: 'nat' | 'dsr'): Promise<Cluster | string> {
  const lab = await createLab({ mode, nodes: 3, clients: 1, backends: 3 });
  t.teardown(() => lab.teardown());
  const why = await clusterSupport(lab);
  if (why) return why;
  routeNodesToBackends(lab);
  await startContinuityServers(lab);
  const key = writeClusterKey();
  t.teardown(() => key.remove());
  const c: Cluster = {
    lab, keyFile: key.file, key: key.key, settings: { heartbeat: `${HEARTBEAT_MS}ms`, preempt: true },
    nodes: lab.ns.nodes.map((ns, i) => ({ index: i, name: nodeName(i), ns, address: lab.addr.nodes[i]!, mac: lab.mac.nodes[i]!, yaml: '', vg: null })),
  };
  t.teardown(() => stopAll(c));
  await startAll(c);
  await waitOwner(lab, 0, owned(lab), 15_000);
  return c;
}

if (!can.ok) {
  t.plan(0, `skipped: the cluster lab needs root, network namespaces and libpcap (${can.why})`);
} else if (!arp.ok) {
  t.plan(0, `skipped: ${arp.why}`);
} else {
  t.test('nat: three nodes, one segment', async (t) => {
    const set = await setUp(t, 'nat');
    if (typeof set === 'string') { t.plan(0, `skipped: ${set}`); return; }
    const c = set;
    const { lab } = c;

    await t.test('the owner SIGKILLed: connections continue through lb-2; back with preempt on, it takes the VIPs back with zero broken', async (t) => {
      await withWorkload(t, lab, 12, 'kill and return', async (w) => {
        let before = await w.progress();
        await killNode(c.nodes[0]!);
        const moved = await waitOwner(lab, 1, owned(lab));
        t.comment(`VIPs and gateway answered by lb-2 alone within ${moved} ms of the kill (ARP probe rounds of about 350 ms; bench:cluster times it finely)`);
        const v2 = clusterView(c.nodes[1]!.vg!), v3 = clusterView(c.nodes[2]!.vg!);
        t.same([peerState(v2, 'lb-1'), peerState(v3, 'lb-1')], ['dead', 'dead'], 'lb-2 and lb-3 see lb-1 dead');
        const all2 = Object.fromEntries(Object.keys(viewOwners(v2)).map((ip) => [ip, 'lb-2']));
        t.same([viewOwners(v2), viewOwners(v3)], [all2, all2], 'lb-2 and lb-3 agree: lb-2 owns every VIP and the gateway');
        const ev = (c.nodes[1]!.vg!.api('GET', '/v1/events?limit=200').json as EventPage).events;
        t.ok(ev.some((e) => e.type === 'cluster_peer_dead' && e.node === 'lb-1'), 'lb-2 reports lb-1 dead as an event');
        t.ok(ev.some((e) => e.type === 'cluster_takeover'), `lb-2 reports its takeover as an event: ${JSON.stringify(ev.filter((e) => e.type === 'cluster_takeover').map((e) => e.message))}`);
        t.comment(`connections moved again within ${await allMove(w, before, 'the kill', RESUME_MS)} ms`);
        before = await w.progress();
        await restartNode(c, 0);
        const back = await waitOwner(lab, 0, owned(lab));
        t.comment(`lb-1 back: answers alone ${back} ms after it started`);
        t.comment(`connections moved again within ${await allMove(w, before, 'the return', RESUME_MS)} ms`);
      });
    });

    await t.test('the owner\'s link cut, then restored; then frozen (SIGSTOP), then thawed: connections continue', async (t) => {
      await withWorkload(t, lab, 16, 'link cut and freeze', async (w) => {
        let before = await w.progress();
        setNodeLink(lab, 0, false);
        t.teardown(() => setNodeLink(lab, 0, true));
        await waitOwner(lab, 1, owned(lab));
        await allMove(w, before, 'the link cut', RESUME_MS);
        before = await w.progress();
        // Cut off, lb-1 believed the others dead and took everything: restoring the link is a
        // partition healing, with two claimants.
        const link = await splitAfter(lab, lab.addr.vips[0]!, () => setNodeLink(lab, 0, true));
        // lb-1's kernel retried ARP for its peers all through the cut: its entries may sit
        // INCOMPLETE until its own retry timer (up to 1 s); the runtime clears them when it hears
        // a peer again, so its heartbeats get through at once.
        t.ok(link.lastDoubleMs <= HEARTBEAT_MS + SPLIT_SLACK_MS, `link restored: the last request answered by two nodes was sent ${link.lastDoubleMs} ms after (bound ${HEARTBEAT_MS} + ${SPLIT_SLACK_MS} ms)`);
        await waitOwner(lab, 0, owned(lab));
        await allMove(w, before, 'the link restored', RESUME_MS);
        before = await w.progress();
        const pids = freezeNode(c.nodes[0]!, true);
        t.teardown(() => { try { freezeNode(c.nodes[0]!, false, pids); } catch { /* gone */ } });
        await waitOwner(lab, 1, owned(lab));
        await allMove(w, before, 'the freeze', RESUME_MS);
        before = await w.progress();
        // Thawed, lb-1 wakes up believing it owns everything (and its peers' silence is as long as its sleep).
        const thaw = await splitAfter(lab, lab.addr.vips[0]!, () => freezeNode(c.nodes[0]!, false, pids));
        t.ok(thaw.lastDoubleMs <= HEARTBEAT_MS + SPLIT_SLACK_MS, `thawed: the last request answered by two nodes was sent ${thaw.lastDoubleMs} ms after (bound ${HEARTBEAT_MS} + ${SPLIT_SLACK_MS} ms)`);
        await waitOwner(lab, 0, owned(lab));
        await allMove(w, before, 'the thaw', RESUME_MS);
      });
    });

    await t.test('partition of the heartbeat path, then heal: no VIP answered by two nodes for longer than one heartbeat', async (t) => {
      const vip = lab.addr.vips[0]!;
      // lb-1 and lb-2 have split before (the link cut): this one must be counted all the same.
      const splits = (): number => [0, 1].reduce((a, i) => a + (clusterView(c.nodes[i]!.vg!).counters?.splitBrains ?? 0), 0);
      const splitsBefore = splits();
      partition(lab, [[0], [1, 2]]);
      t.teardown(() => heal(lab));
      // Both sides believe they own: lb-1 keeps the VIP, lb-2 takes it for its side.
      const until = Date.now() + MOVE_MS;
      let both: number[] = [];
      while (Date.now() < until) {
        both = await answering(lab, lab.ns.clients[0]!, vip);
        if (both.includes(0) && both.includes(1)) break;
        await sleep(100);
      }
      t.same(both, [0, 1], 'partitioned: lb-1 and lb-2 both answer (split brain, the data path is not cut)');
      const { lastDoubleMs, tail } = await splitAfter(lab, vip, () => heal(lab));
      t.ok(lastDoubleMs <= HEARTBEAT_MS + SPLIT_SLACK_MS,
        `the last request answered by two nodes was sent ${lastDoubleMs} ms after the heal (bound: one heartbeat, ${HEARTBEAT_MS} ms, + ${SPLIT_SLACK_MS} ms slack)`);
      t.ok(tail.every((m) => m.length === 1 && m[0] === lab.mac.nodes[0]), `at the end lb-1 alone answers (${JSON.stringify(tail)})`);
      t.ok(splits() > splitsBefore, `the split brain is counted (lb-1 + lb-2: ${splitsBefore} -> ${splits()})`);
      await waitOwner(lab, 0, owned(lab));
      lab.addr.vips.forEach((v, k) => t.equal(httpGetIn(lab, lab.ns.clients[0]!, `http://${v}:${CONTINUITY_PORT}/ping`), lab.backendNames[k], `clients reach ${v} again`));
    });

    await t.test('forged and replayed heartbeats and replication messages: nothing moves, rejected counters rise', async (t) => {
      const lb1 = c.nodes[0]!, lb2 = c.nodes[1]!;
      // Record what lb-1 sends lb-2: heartbeats, and flow records (new connections make some).
      const hb = captureCluster(lab, lb2.ns, { count: 5, timeoutMs: 5000, src: lb1.address, type: MSG_HEARTBEAT });
      const fl = captureCluster(lab, lb2.ns, { count: 3, timeoutMs: 5000, src: lb1.address, type: MSG_FLOWS });
      await Promise.all([hb.ready, fl.ready]);
      for (let k = 0; k < 6; k++) for (const v of lab.addr.vips) httpGetIn(lab, lab.ns.clients[0]!, `http://${v}:${CONTINUITY_PORT}/ping`);
      const heartbeats = await hb.frames, flows = await fl.frames;
      t.ok(heartbeats.length >= 3, `recorded ${heartbeats.length} heartbeats from lb-1 to lb-2`);
      t.ok(flows.length >= 1, `recorded ${flows.length} replication messages from lb-1 to lb-2`);
      const recorded = [...heartbeats, ...flows];
      const genuine = recorded.map((f) => decode(payloadOf(f), c.key, 3, 1));
      t.ok(genuine.every((d) => d.ok && d.env.sender === 0), 'what was recorded is genuine: lb-2 (rank 1) would accept it from lb-1 (rank 0) with the cluster key');

      const viewBefore = clusterView(lb2.vg!);
      const rejectedBefore = rejectedTotal(viewBefore);
      const wrongKey = Buffer.alloc(32, 0x5a);
      const forged = recorded.flatMap((f) => {
        const p = payloadOf(f);
        return [
          withPayload(f, flipBit(p, 8 * 40 + 3)), // in the body
          withPayload(f, flipBit(p, 8 * 24 + 60)), // in the seq
          withPayload(f, flipBit(p, 8 * (p.length - 1))), // in the HMAC
          withPayload(f, p.subarray(0, p.length - 7)), // cut short
          withPayload(f, resign(p, wrongKey)), // fresh, but signed with another key
        ];
      });
      // A forged heartbeat in lb-3's name as well: a node that would take everything.
      const asLb3 = withPayload(heartbeats[0]!, resign(payloadOf(heartbeats[0]!), wrongKey, { sender: 2 }));
      await sleep(300);
      const sent = injectFrames(lab, lb1.ns, recorded) + injectFrames(lab, lb1.ns, forged) + injectFrames(lab, lb1.ns, [asLb3]);
      t.comment(`sent ${recorded.length} replayed and ${forged.length + 1} forged datagrams to lb-2`);
      await sleep(1000);
      const viewAfter = clusterView(lb2.vg!);
      const rejectedAfter = rejectedTotal(viewAfter);
      t.ok(rejectedAfter - rejectedBefore >= sent, `lb-2's rejected counters rose by ${rejectedAfter - rejectedBefore} (sent ${sent}): ${JSON.stringify(viewAfter.rejected)}`);
      const rose = (reason: string): number => (viewAfter.rejected?.[reason] ?? 0) - (viewBefore.rejected?.[reason] ?? 0);
      t.ok(rose('replayed') >= recorded.length, `replays refused as replayed: +${rose('replayed')} (sent ${recorded.length})`);
      t.ok(rose('bad_hmac') >= recorded.length * 4 + 1, `bit flips and the wrong key refused as bad_hmac: +${rose('bad_hmac')} (sent ${recorded.length * 4 + 1})`);
      t.same([peerState(viewAfter, 'lb-1'), peerState(viewAfter, 'lb-3')], ['alive', 'alive'], 'lb-2 still sees lb-1 and lb-3 alive');
      t.same(viewOwners(viewAfter), viewOwners(viewBefore), 'lb-2 computes the same owners as before');
      t.equal(await waitOwner(lab, 0, owned(lab), 0).then(() => 'lb-1', (err: Error) => err.message), 'lb-1', 'lb-1 still answers alone for every VIP and the gateway');
    });

    await t.test('preempt off: lb-1 back does not take the VIPs back from lb-2', async (t) => {
      await stopAll(c);
      c.settings = { ...c.settings, preempt: false };
      await startAll(c);
      await waitOwner(lab, 0, owned(lab), 15_000);
      await withWorkload(t, lab, 10, 'kill and return, preempt off', async (w) => {
        const before = await w.progress();
        await killNode(c.nodes[0]!);
        await waitOwner(lab, 1, owned(lab));
        await allMove(w, before, 'the kill', RESUME_MS);
        await restartNode(c, 0);
        // Long enough for lb-1 to be alive and synced everywhere: a preempting lb-1 would be back by now.
        await sleep(3000);
        t.equal(await waitOwner(lab, 1, owned(lab), 0).then(() => 'lb-2', (err: Error) => err.message), 'lb-2', 'lb-2 keeps every VIP and the gateway');
      });
    });
  });

  t.test('dsr: the owner SIGKILLed, connections continue through lb-2', async (t) => {
    const set = await setUp(t, 'dsr');
    if (typeof set === 'string') { t.plan(0, `skipped: ${set}`); return; }
    const c = set;
    await withWorkload(t, c.lab, 8, 'kill (dsr)', async (w) => {
      const before = await w.progress();
      await killNode(c.nodes[0]!);
      await waitOwner(c.lab, 1, owned(c.lab));
      t.comment(`connections moved again within ${await allMove(w, before, 'the kill', RESUME_MS)} ms`);
    });
  });
}

// The SYN-time check and on_backend_down, on a fake clock and a fake prober (issue 8 items 3
// and 5): the hold verdict, one probe shared by several SYNs, forward / next / reset, deadlines
// and probes that answer late, overflow and duplicates, retransmits of half-open flows, the
// verified-flow skip, the RST bytes (compared with a frame built independently, checksums
// recomputed in full), and on_backend_down reset vs keep in dsr and nat. Tables come from a
// TablesSpec directly (the config side of issue 8 is built elsewhere).
import t from 'tap';
import { tcp } from './helpers/frames';
import { reasonName, OUR_MAC, CLIENT_MAC, WEB1_MAC, WEB2_MAC } from './helpers/dp';
import { ipOf, tcpOf, tcpOk } from './helpers/inspect';
import { Dataplane, VERDICT_TX, VERDICT_HOLD, VERDICT_DROP } from '../src/dataplane/dataplane';
import { createState } from '../src/dataplane/state';
import { SynHold } from '../src/dataplane/hold';
import { Tables, TablesSpec, HealthName, OnDownName, SynFailName } from '../src/tables/services';
import { Ctr, Drop } from '../src/dataplane/counters';
import { FS_CLOSING, FS_SYN } from '../src/dataplane/flows';
import { SynCheck } from '../src/control/health/syn-check';
import type { Prober } from '../src/control/health/syn-probe';
import type { ProbeResult } from '../src/control/health/types';
import { TCP_SYN, TCP_ACKF, TCP_RST, TCP_PSH } from '../src/wire/tcp';
import { parseMac, parseIpv4, formatIpv4 } from '../src/wire/addr';
import { parseEthernet } from '../src/wire/ethernet';
import { checksum } from '../src/wire/checksum';

const VIP = '10.0.0.101';
const WEB3_MAC = '02:00:00:00:01:23';
const CLI = '10.0.0.7';

/** A prober whose answers the test gives, one call at a time. */
class FakeProber implements Prober {
  readonly kind = 'syn' as const;
  calls: Array<{ ip: string; port: number; answer: (r: ProbeResult) => Promise<void> }> = [];
  probe(ip: number, port: number): Promise<ProbeResult> {
    return new Promise((resolve) => {
      // answer() resolves the probe and waits for SynCheck's .then to have run.
      this.calls.push({ ip: formatIpv4(ip), port, answer: (r) => { resolve(r); return new Promise((d) => setImmediate(d)); } });
    });
  }
  close(): void {}
}
const OK: ProbeResult = { ok: true, latencyMs: 0.3, reason: null };
const REFUSED: ProbeResult = { ok: false, latencyMs: 0.2, reason: 'connection refused (RST)' };

interface Opts {
  mode?: 'dsr' | 'nat';
  onFail?: SynFailName;
  onDown?: OnDownName;
  health?: Partial<Record<string, HealthName>>;
  unchecked?: string[];
  maxAgeMs?: number;
  slots?: number;
  standby?: string[];
}

function specOf(o: Opts): TablesSpec {
  const mac = (m: string) => parseMac(m)!;
  return {
    mac: mac(OUR_MAC),
    mode: o.mode ?? 'dsr',
    vips: [parseIpv4(VIP)!],
    backends: [['web1', '10.0.1.21', WEB1_MAC], ['web2', '10.0.1.22', WEB2_MAC], ['web3', '10.0.1.23', WEB3_MAC]].map(([name, ip, m]) => ({
      name: name!, ip: parseIpv4(ip!)!, mac: mac(m!), health: o.health?.[name!] ?? 'unknown', checked: !(o.unchecked ?? []).includes(name!),
    })),
    services: [{ vip: parseIpv4(VIP)!, port: 80, active: 'web1', standby: o.standby ?? ['web2', 'web3'], onBackendDown: o.onDown ?? 'reset' }],
    synCheck: o.maxAgeMs === 0 ? null : { maxAgeMs: o.maxAgeMs ?? 2000, onFail: o.onFail ?? 'next' },
  };
}

function setup(o: Opts = {}) {
  const state = createState({
    flowCapacity: 1024, neighbourCapacity: 64, halfOpenTimeoutMs: 15_000, establishedTimeoutMs: 900_000,
    closingTimeoutMs: 30_000, neighbourTtlMs: 300_000, seed: 7,
  });
  const tables = new Tables(specOf(o));
  const dp = new Dataplane(state, tables);
  const hold = new SynHold(o.slots ?? 8);
  dp.attachHold(hold);
  const prober = new FakeProber();
  const sent: Buffer[] = [];
  const observed: Array<[string, boolean]> = [];
  const events: Array<[string, Record<string, unknown>]> = [];
  const clock = { now: 1_000_000 };
  const check = new SynCheck({
    dp, hold, prober, timeoutMs: 20, clock: () => clock.now,
    send: (b, n) => { sent.push(Buffer.from(b.subarray(0, n))); return true; },
    observer: { observe: (name, r) => { observed.push([name, r.ok]); } },
    events: { emit: (type, fields) => { events.push([type, fields]); } },
  });
  const slot = (name: string) => tables.backendSlot(name);
  const c = state.counters;
  /** Process a frame at the clock's time; returns verdict, drop reason name and the (rewritten) bytes. */
  const run = (frame: Buffer) => {
    const buf = Buffer.from(frame);
    const verdict = dp.process(buf, 0, buf.length, clock.now);
    return { verdict, reason: reasonName(dp.lastDrop), out: buf.subarray(0, verdict === VERDICT_TX ? dp.txLen : buf.length) };
  };
  const republish = (over: Opts) => dp.publish(new Tables(specOf({ ...o, ...over }), dp.currentTables));
  return { state, dp, hold, prober, sent, observed, events, clock, check, slot, c, run, republish };
}

const syn = (sport = 40000, seq = 1000) => tcp({
  srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLI, dst: VIP, srcPort: sport, dstPort: 80, flags: TCP_SYN, seq,
  options: { mss: 1460, sackPermitted: true, tsval: 1, wscale: 7 },
});
const ack = (sport = 40000, payload = '') => tcp({
  srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLI, dst: VIP, srcPort: sport, dstPort: 80, flags: TCP_ACKF | (payload ? TCP_PSH : 0),
  seq: 1001, ack: 7001, payload,
});
const dstMacOf = (f: Buffer) => parseEthernet(f)!.dst;

t.test('a SYN for an unverified backend is held, probed once, forwarded when it answers; the flow is verified', async (t) => {
  const x = setup();
  const frame = syn();
  const r = x.run(frame);
  t.equal(r.verdict, VERDICT_HOLD, 'held');
  t.same(r.out, frame, 'a held frame is left as it was');
  t.equal(x.c[Ctr.syn_held], 1);
  t.equal(x.c[Ctr.flows_active], 0, 'no flow yet: it is created when the SYN is released');
  t.equal(x.c[Ctr.frames_in], x.c[Ctr.frames_out]! + x.c[Ctr.syn_held]!, 'frames_in = frames_out + drops + syn_held');
  x.check.drain(x.clock.now);
  t.same(x.prober.calls.map((p) => `${p.ip}:${p.port}`), ['10.0.1.21:80'], 'web1 probed on the port the client dialled');
  x.clock.now += 1;
  await x.prober.calls[0]!.answer(OK);
  t.equal(x.sent.length, 1, 'released');
  t.equal(dstMacOf(x.sent[0]!), WEB1_MAC, 'to web1');
  t.equal(tcpOf(x.sent[0]!).flags, TCP_SYN);
  t.equal(x.c[Ctr.syn_check_forwarded], 1);
  t.equal(x.state.bHealthOkAt[x.slot('web1')], x.clock.now, 'the probe vouches for web1 (bHealthOkAt)');
  t.equal(x.state.bVerified[x.slot('web1')], 1, 'one verified flow');
  t.equal(x.c[Ctr.verified_flows], 1);
  t.equal(x.hold.used, 0, 'slot freed');
  t.same(x.observed, [['web1', true]], 'the result went to the health observer');
  // While web1 is vouched for, a new SYN goes straight through.
  const t0 = x.clock.now;
  const r2 = x.run(syn(40001));
  t.equal(r2.verdict, VERDICT_TX, 'next SYN: no hold');
  t.equal(dstMacOf(r2.out), WEB1_MAC);
  // Past max_age, live verified flows keep sparing new SYNs the probe (JP2002-207647) while
  // their handshakes are recent evidence that web1 answers.
  x.clock.now = t0 + 1500;
  t.equal(x.run(ack(40001)).verdict, VERDICT_TX, 'the client completes its handshake with web1');
  x.clock.now = t0 + 2500;
  t.equal(x.run(syn(40002)).verdict, VERDICT_TX, 'the probe is stale, but a verified handshake 1 s ago: no hold');
  t.equal(x.state.bVerified[x.slot('web1')], 2, 'the SYNs sent within max_age count; the one after it does not');
  x.clock.now = t0 + 3600;
  t.equal(x.run(syn(40003)).verdict, VERDICT_HOLD, 'verified flows still live, but no handshake for 2.1 s: probed again');
});

t.test('a verified flow stops counting once it ends (FIN or RST)', async (t) => {
  const x = setup();
  x.state.bHealthOkAt[x.slot('web1')] = x.clock.now;
  x.run(syn(41000));
  x.run(ack(41000));
  t.equal(x.state.bVerified[x.slot('web1')], 1);
  x.run(tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLI, dst: VIP, srcPort: 41000, dstPort: 80, flags: TCP_ACKF | 0x01, seq: 1001, ack: 7001 }));
  t.equal(x.state.bVerified[x.slot('web1')], 0, 'FIN: closing, no longer verified');
  t.equal(x.c[Ctr.verified_flows], 0);
});

t.test('verified flows are counted until they end', async (t) => {
  const x = setup();
  x.state.bHealthOkAt[x.slot('web1')] = x.clock.now;
  t.equal(x.run(syn(41000)).verdict, VERDICT_TX);
  t.equal(x.state.bVerified[x.slot('web1')], 1);
  x.clock.now += 16_000; // past the half-open timeout
  x.dp.sweep(x.clock.now, 4096);
  t.equal(x.state.bVerified[x.slot('web1')], 0, 'expired: no longer verified');
  t.equal(x.c[Ctr.verified_flows], 0);
  t.equal(x.run(syn(41001)).verdict, VERDICT_HOLD, 'stale and no verified flow: held again');
});

t.test('several SYNs held for one backend share one probe', async (t) => {
  const x = setup();
  for (let i = 0; i < 5; i++) t.equal(x.run(syn(42000 + i)).verdict, VERDICT_HOLD);
  x.check.drain(x.clock.now);
  t.equal(x.prober.calls.length, 1, 'one probe');
  t.equal(x.run(syn(42010)).verdict, VERDICT_HOLD, 'another SYN while the probe is out');
  x.check.drain(x.clock.now);
  t.equal(x.prober.calls.length, 1, 'joins the same probe');
  await x.prober.calls[0]!.answer(OK);
  t.equal(x.sent.length, 6, 'all six released');
  t.ok(x.sent.every((f) => dstMacOf(f) === WEB1_MAC));
  t.equal(x.c[Ctr.flows_active], 6);
});

t.test('on_fail next: a backend that does not answer is skipped; the next member is probed too, then used', async (t) => {
  const x = setup();
  t.equal(x.run(syn()).verdict, VERDICT_HOLD);
  x.check.drain(x.clock.now);
  await x.prober.calls[0]!.answer(REFUSED);
  t.same(x.prober.calls.map((p) => p.ip), ['10.0.1.21', '10.0.1.22'], 'web1 failed: web2 (unverified) is probed before it gets the SYN');
  t.equal(x.sent.length, 0, 'nothing sent yet');
  await x.prober.calls[1]!.answer(OK);
  t.equal(x.sent.length, 1);
  t.equal(dstMacOf(x.sent[0]!), WEB2_MAC, 'moved to web2');
  t.equal(x.c[Ctr.syn_check_moved], 1);
  t.equal(x.c[Ctr.syn_check_forwarded], 0);
  t.same(x.observed, [['web1', false], ['web2', true]]);
});

t.test('a backend that just failed is not probed again within max_age: its SYNs move at once', async (t) => {
  const x = setup({ standby: ['web2'] });
  x.state.bHealthOkAt[x.slot('web2')] = x.clock.now; // web2 verified
  t.equal(x.run(syn(40000)).verdict, VERDICT_HOLD);
  x.check.drain(x.clock.now);
  await x.prober.calls[0]!.answer(REFUSED);
  t.equal(x.sent.length, 1);
  t.equal(dstMacOf(x.sent[0]!), WEB2_MAC);
  t.equal(x.run(syn(40001)).verdict, VERDICT_HOLD, 'web1 is still the pick and unverified: held');
  x.check.drain(x.clock.now);
  t.equal(x.prober.calls.length, 1, 'no second probe of web1');
  t.equal(x.sent.length, 2, 'moved in the same turn');
  t.equal(dstMacOf(x.sent[1]!), WEB2_MAC);
  x.clock.now += 2001;
  t.equal(x.run(syn(40002)).verdict, VERDICT_HOLD);
  x.check.drain(x.clock.now);
  t.equal(x.prober.calls.length, 2, 'after max_age web1 is probed again');
});

t.test('on_fail reset, and next with no member left: the client gets an RST (golden bytes)', async (t) => {
  for (const [desc, o] of [['on_fail reset', { onFail: 'reset' as const }], ['next, no other member', { standby: [] as string[] }]] as const) {
    const x = setup(o);
    t.equal(x.run(syn(40000, 123456)).verdict, VERDICT_HOLD);
    x.check.drain(x.clock.now);
    await x.prober.calls[0]!.answer(REFUSED);
    t.equal(x.prober.calls.length, 1, `${desc}: no other probe`);
    t.equal(x.sent.length, 1, `${desc}: one frame`);
    const rst = x.sent[0]!;
    const want = tcp({ srcMac: OUR_MAC, dstMac: CLIENT_MAC, src: VIP, dst: CLI, srcPort: 80, dstPort: 40000, flags: TCP_RST | TCP_ACKF, seq: 0, ack: 123457, window: 0, id: 0, ttl: 64 });
    t.equal(rst.length, 54, `${desc}: 14 + 20 + 20 bytes, no options, no payload`);
    t.same(rst, want.subarray(0, 54), `${desc}: RST|ACK from VIP:80, seq 0, ack = SYN's seq + 1 (RFC 9293 3.10.7.1)`);
    const e = parseEthernet(rst)!;
    t.equal(checksum(rst, e.l3, 20), 0, `${desc}: IPv4 header checksum verifies (full recomputation)`);
    t.ok(tcpOk(rst), `${desc}: TCP checksum verifies (full recomputation)`);
    t.equal(x.c[Ctr.syn_check_resets], 1);
    t.equal(x.c[Ctr.flows_active], 0, `${desc}: no flow`);
    t.equal(x.hold.used, 0);
  }
});

t.test('deadline: a probe that does not answer in time releases its SYNs by the same rule; its late answer is ignored', async (t) => {
  const x = setup();
  x.state.bHealthOkAt[x.slot('web2')] = x.clock.now;
  const t0 = x.clock.now;
  t.equal(x.run(syn()).verdict, VERDICT_HOLD);
  x.check.drain(t0);
  x.clock.now = t0 + 19;
  x.check.tick(x.clock.now);
  t.equal(x.sent.length, 0, 'still held at 19 ms');
  t.equal(x.check.nextDeadline(), t0 + 20);
  x.clock.now = t0 + 20;
  x.check.tick(x.clock.now);
  t.equal(x.sent.length, 1, 'released at the 20 ms timeout');
  t.equal(dstMacOf(x.sent[0]!), WEB2_MAC, 'to the next member');
  t.same(x.observed, [['web1', false]], 'the timeout counts as a failed check');
  await x.prober.calls[0]!.answer(OK);
  t.equal(x.sent.length, 1, 'the late answer releases nothing twice');
  t.equal(x.check.lateAnswers, 1);
  t.equal(x.state.bHealthOkAt[x.slot('web1')], 0, 'and does not vouch for web1');
  t.equal(x.c[Ctr.flows_active], 1);
});

t.test('overflow and duplicates are counted drops', async (t) => {
  const x = setup({ slots: 2 });
  t.equal(x.run(syn(40000)).verdict, VERDICT_HOLD);
  const dup = x.run(syn(40000));
  t.equal(dup.verdict, VERDICT_DROP);
  t.equal(dup.reason, 'syn_hold_duplicate', 'a retransmit of a held SYN');
  t.equal(x.run(syn(40001)).verdict, VERDICT_HOLD);
  const full = x.run(syn(40002));
  t.equal(full.reason, 'syn_hold_full', 'no free slot');
  t.equal(x.c[Drop.syn_hold_full], 1);
  const c = x.c;
  const drops = [Drop.syn_hold_full, Drop.syn_hold_duplicate].reduce((s, i) => s + c[i]!, 0);
  t.equal(c[Ctr.frames_in], c[Ctr.frames_out]! + drops + c[Ctr.syn_held]!, 'frames_in = frames_out + drops + syn_held');
  x.check.drain(x.clock.now);
  await x.prober.calls[0]!.answer(OK);
  t.equal(x.hold.used, 0, 'slots free again');
  t.equal(x.run(syn(40003)).verdict, VERDICT_TX, 'and web1 is verified now');
});

t.test('a retransmitted SYN of a half-open flow probes its backend at once and is re-steered if it fails', async (t) => {
  const x = setup();
  x.state.bHealthOkAt[x.slot('web1')] = x.clock.now; // web1 vouched for: the first SYN goes through
  t.equal(x.run(syn()).verdict, VERDICT_TX);
  t.equal(x.dp.flows.state(x.dp.flows.lookup(parseIpv4(CLI)! | 0, parseIpv4(VIP)! | 0, (40000 << 16) | 80)), FS_SYN);
  x.clock.now += 1000; // the client's SYN retransmit timer
  t.equal(x.run(syn()).verdict, VERDICT_HOLD, 'the retransmit is held although web1 is fresh');
  x.check.drain(x.clock.now);
  t.same(x.prober.calls.map((p) => p.ip), ['10.0.1.21'], 'web1 probed at once');
  x.state.bHealthOkAt[x.slot('web2')] = x.clock.now;
  await x.prober.calls[0]!.answer(REFUSED);
  t.equal(x.sent.length, 1);
  t.equal(dstMacOf(x.sent[0]!), WEB2_MAC, 're-steered to web2');
  t.equal(x.c[Ctr.flows_active], 1, 'one flow: the half-open one on web1 was replaced');
  const f = x.dp.flows.lookup(parseIpv4(CLI)! | 0, parseIpv4(VIP)! | 0, (40000 << 16) | 80);
  t.equal(x.dp.currentTables.backendNames[x.dp.flows.backend(f)], 'web2');
  t.equal(x.state.bVerified[x.slot('web1')], 0, 'web1 lost its verified flow');
  // And when the probe answers, the retransmit goes to the same backend.
  const y = setup();
  y.state.bHealthOkAt[y.slot('web1')] = y.clock.now;
  y.run(syn());
  t.equal(y.run(syn()).verdict, VERDICT_HOLD);
  y.check.drain(y.clock.now);
  await y.prober.calls[0]!.answer(OK);
  t.equal(dstMacOf(y.sent[0]!), WEB1_MAC, 'answered: the retransmit goes to web1');
  t.equal(y.c[Ctr.syn_retransmits], 1);
  t.equal(y.c[Ctr.flows_active], 1);
});

t.test('what is never held: health: false backends, the check off, a backend vouched for by a health check', async (t) => {
  t.equal(setup({ unchecked: ['web1'] }).run(syn()).verdict, VERDICT_TX, 'health: false');
  t.equal(setup({ maxAgeMs: 0 }).run(syn()).verdict, VERDICT_TX, 'syn_check off');
  const x = setup();
  x.state.bHealthOkAt[x.slot('web1')] = x.clock.now - 1999;
  t.equal(x.run(syn()).verdict, VERDICT_TX, 'a check 1.999 s ago with max_age 2 s');
  const y = setup({ health: { web1: 'down' } });
  y.state.bHealthOkAt[y.slot('web2')] = y.clock.now;
  const r = y.run(syn());
  t.equal(r.verdict, VERDICT_TX);
  t.equal(dstMacOf(r.out), WEB2_MAC, 'a DOWN backend is not picked at all');
});

t.test('aggregate events: one syn_check event per backend per interval', async (t) => {
  const x = setup();
  x.run(syn(40000));
  x.run(syn(40001));
  x.check.drain(x.clock.now);
  await x.prober.calls[0]!.answer(REFUSED);
  await x.prober.calls[1]!.answer(OK);
  x.check.tick(x.clock.now);
  const ev = x.events.filter(([type]) => type === 'syn_check').map(([, f]) => f);
  t.same(ev.map((e) => e.backend).sort(), ['web1', 'web2']);
  t.match(ev.find((e) => e.backend === 'web1'), { probes: 1, probes_failed: 1, last_failure: '10.0.1.21:80 connection refused (RST)' });
  x.check.tick(x.clock.now + 10);
  t.equal(x.events.length, ev.length, 'nothing more within the interval');
});

for (const mode of ['dsr', 'nat'] as const) {
  t.test(`${mode}: on_backend_down reset answers the client's next segment with an RST; keep forwards as before`, async (t) => {
    for (const onDown of ['reset', 'keep'] as const) {
      const x = setup({ mode, onDown, maxAgeMs: 0 });
      t.equal(x.run(syn()).verdict, VERDICT_TX, `${onDown}: SYN to web1`);
      t.equal(x.run(ack()).verdict, VERDICT_TX, `${onDown}: handshake ACK`);
      x.republish({ health: { web1: 'down' } });
      const r = x.run(ack(40000, 'GET / HTTP/1.1\r\n\r\n'));
      t.equal(r.verdict, VERDICT_TX);
      if (onDown === 'keep') {
        t.equal(dstMacOf(r.out), WEB1_MAC, 'keep: still forwarded to web1');
        t.equal(ipOf(r.out).dst, mode === 'nat' ? '10.0.1.21' : VIP);
        t.equal(x.c[Ctr.backend_down_resets], 0);
        continue;
      }
      const want = tcp({ srcMac: OUR_MAC, dstMac: CLIENT_MAC, src: VIP, dst: CLI, srcPort: 80, dstPort: 40000, flags: TCP_RST, seq: 7001, ack: 0, window: 0, id: 0, ttl: 64 });
      t.equal(r.out.length, 54, 'reset: a 54-byte frame (the request payload is gone)');
      t.same(r.out, want.subarray(0, 54), 'reset: RST from VIP:80 with seq = the segment\'s ACK (RFC 5961: exactly RCV.NXT)');
      t.equal(checksum(r.out, 14, 20), 0, 'IPv4 checksum verifies');
      t.ok(tcpOk(r.out), 'TCP checksum verifies');
      t.equal(x.c[Ctr.backend_down_resets], 1, 'counted');
      const f = x.dp.flows.lookup(parseIpv4(CLI)! | 0, parseIpv4(VIP)! | 0, (40000 << 16) | 80);
      t.equal(x.dp.flows.state(f), FS_CLOSING, 'the flow is closing');
      const rst = x.run(tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLI, dst: VIP, srcPort: 40000, dstPort: 80, flags: TCP_RST, seq: 1001 }));
      t.equal(tcpOf(rst.out).flags & TCP_RST, TCP_RST, 'an RST from the client is forwarded, never answered with an RST');
      t.equal(x.c[Ctr.backend_down_resets], 1);
      // A new connection from the same client goes elsewhere.
      const again = x.run(syn(40000, 5000));
      t.equal(again.verdict, VERDICT_TX);
      t.equal(dstMacOf(again.out), WEB2_MAC, 'a new SYN on the same 5-tuple goes to web2');
    }
  });
}

t.test('a SYN retransmit of a flow whose backend went DOWN is re-steered', async (t) => {
  const x = setup({ maxAgeMs: 0 });
  t.equal(dstMacOf(x.run(syn()).out), WEB1_MAC);
  x.republish({ health: { web1: 'down' } });
  const r = x.run(syn());
  t.equal(r.verdict, VERDICT_TX);
  t.equal(dstMacOf(r.out), WEB2_MAC, 'the retry goes to web2, not to the dead web1');
  t.equal(x.c[Ctr.flows_active], 1);
});

t.test('syn_check config reaches the tables (one path from config to tables)', async (t) => {
  const { parseConfig } = await import('../src/control/config.js');
  const { configText } = await import('./helpers/dp.js');
  const { configSpec } = await import('../src/control/model.js');
  const c = parseConfig(configText('dsr', 'syn_check: { enabled: true, max_age: 2s, timeout: 20ms, on_fail: reset }'));
  t.same(c.synCheck, { maxAgeMs: 2000, timeoutMs: 20, onFail: 'reset' });
  const tb = new Tables(configSpec(c, parseMac(OUR_MAC)!));
  t.equal(tb.synCheckMaxAgeMs, 2000);
  t.equal(tb.synCheckOnFail, 1, 'reset');
  t.equal(new Tables(configSpec(parseConfig(configText('dsr')), parseMac(OUR_MAC)!)).synCheckMaxAgeMs, 0, 'absent: off');
});

t.test('nat: a backend that refuses a SYN loses its verified flows\' say at once', async (t) => {
  const y = setup({ mode: 'nat' });
  const t0 = y.clock.now;
  y.state.bHealthOkAt[y.slot('web1')] = t0;
  const fromWeb1 = (sport: number, flags: number, seq: number) => tcp({
    srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: CLI, srcPort: 80, dstPort: sport, flags, seq, ack: 1001,
  });
  t.equal(y.run(syn(44000)).verdict, VERDICT_TX, 'verified SYN');
  y.clock.now = t0 + 1500;
  t.equal(y.run(fromWeb1(44000, TCP_SYN | TCP_ACKF, 7000)).verdict, VERDICT_TX, 'web1\'s SYN-ACK through vipgate: a verified handshake');
  y.clock.now = t0 + 2500;
  t.equal(y.run(syn(44002)).verdict, VERDICT_TX, 'the probe is stale, the handshake 1 s old: no hold');
  // web1's server dies: it refuses 44002's SYN, and in nat the RST comes back through vipgate.
  t.equal(y.run(fromWeb1(44002, TCP_RST | TCP_ACKF, 0)).verdict, VERDICT_TX, 'the RST goes on to the client');
  t.equal(y.run(syn(44003)).verdict, VERDICT_HOLD, 'the next SYN is held and probed, not refused too');
});

t.test('new flows that go unanswered make their backend suspect, however fresh its last check', async (t) => {
  const x = setup();
  x.state.bHealthOkAt[x.slot('web1')] = x.clock.now; // a check answered just now
  for (let i = 0; i < 4; i++) t.equal(x.run(syn(45000 + i)).verdict, VERDICT_TX, `SYN ${i + 1}: no hold`);
  x.clock.now += 10;
  t.equal(x.run(syn(45010)).verdict, VERDICT_TX, '4 unanswered, but only for 10 ms (< the 20 ms probe timeout)');
  x.clock.now += 15;
  t.equal(x.run(syn(45011)).verdict, VERDICT_HOLD, '5 unanswered, the oldest for 25 ms: held and probed');
  x.check.drain(x.clock.now);
  t.equal(x.prober.calls.length, 1);
  await x.prober.calls[0]!.answer(OK);
  t.equal(dstMacOf(x.sent[0]!), WEB1_MAC, 'web1 answers the probe: forwarded');
  t.equal(x.run(syn(45012)).verdict, VERDICT_TX, 'and no longer suspect');
  // A completed handshake clears it too.
  const y = setup();
  y.state.bHealthOkAt[y.slot('web1')] = y.clock.now;
  for (let i = 0; i < 4; i++) y.run(syn(46000 + i));
  y.run(ack(46002));
  y.clock.now += 50;
  t.equal(y.run(syn(46010)).verdict, VERDICT_TX, 'a handshake completed: not suspect');
  // And with web1 dead (its probe refused), later SYNs move without waiting for max_age.
  const z = setup();
  z.state.bHealthOkAt[z.slot('web1')] = z.clock.now;
  z.state.bHealthOkAt[z.slot('web2')] = z.clock.now;
  for (let i = 0; i < 4; i++) z.run(syn(47000 + i));
  z.clock.now += 21;
  t.equal(z.run(syn(47010)).verdict, VERDICT_HOLD);
  z.check.drain(z.clock.now);
  await z.prober.calls[0]!.answer(REFUSED);
  t.equal(dstMacOf(z.sent[0]!), WEB2_MAC, 'moved to web2 21 ms after web1 stopped answering');
  t.equal(z.run(syn(47011)).verdict, VERDICT_HOLD, 'still suspect');
  z.check.drain(z.clock.now);
  t.equal(z.prober.calls.length, 1, 'not probed again within max_age');
  t.equal(dstMacOf(z.sent[1]!), WEB2_MAC, 'moved on the same turn');
});

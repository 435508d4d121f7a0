// Issue 11, the packet path's part of a cluster: the shared-memory record ring, the journal the
// packet path writes, the import that upserts a peer's records, adoption of flows whose record has
// not arrived, and ARP ownership. Two Dataplanes over two states stand for two nodes; the
// supervisor's part (UDP between them) is played by copying the journal of one into the import
// ring of the other, the same 24-byte records the wire carries.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCaptureFile } from '../src/pcap';
import { arp, tcp } from './helpers/frames';
import { OUR_MAC, CLIENT_MAC, CLIENT2_MAC, reasonName } from './helpers/dp';
import { ipOf, tcpOk } from './helpers/inspect';
import { parseConfig } from '../src/control/config';
import { buildDataplane, type Built } from '../src/app/replay';
import { configSpec } from '../src/control/model';
import { Controller } from '../src/control/controller';
import { Tables } from '../src/tables/services';
import { VERDICT_TX, VERDICT_DROP } from '../src/dataplane/dataplane';
import { Ctr, Drop } from '../src/dataplane/counters';
import { FS_SYN, FS_ESTABLISHED, FS_CLOSING } from '../src/dataplane/flows';
import { createState, attachState } from '../src/dataplane/state';
import { RecordRing, RING_CTL_WORDS, RING_RECORDS, ringBytes } from '../src/shm/ring';
import { FLOW_WIRE_BYTES, REPL_NEW, REPL_ESTABLISHED, REPL_CLOSED, REPL_EXPIRED, REPL_REFRESH, REPL_OP_NAMES } from '../src/shm/flow-record';
import { TCP_SYN, TCP_ACKF, TCP_FIN, TCP_RST, TCP_PSH } from '../src/wire/tcp';
import { parseIpv4, formatIpv4 } from '../src/wire/addr';
import { parseEthernet } from '../src/wire/ethernet';
import { parseArp, ARP_OP_REPLY } from '../src/wire/arp';

const W1 = '02:00:00:00:01:21', W2 = '02:00:00:00:01:22', W3 = '02:00:00:00:01:23';
const S = 1000;
const EST_MS = 300 * S;

function configText(mode: 'dsr' | 'nat'): string {
  return `
mac: "${OUR_MAC}"
mode: ${mode}
${mode === 'nat' ? 'nat_gateway: 10.0.1.1' : ''}
vips: ["10.0.0.100", "10.0.0.101"]
backends:
  - { name: web1, ip: 10.0.1.21, mac: "${W1}" }
  - { name: web2, ip: 10.0.1.22, mac: "${W2}" }
  - { name: web3, ip: 10.0.1.23, mac: "${W3}" }
services:
  - { vip: 10.0.0.100, port: 80, active: web1, standby: [web2, web3] }
  - { vip: 10.0.0.101, port: 443, active: web2, standby: [web3] }
flows: { established_timeout: 300s }
`;
}

const ip = (s: string) => parseIpv4(s)! | 0;

/**
 * One node: its own state (its own hash seed, as two machines would have), tables with the cluster
 * on. Every member of a service is made active (one group sharing new flows by weight, as
 * registrations with one priority are), so that the pick depends on the connection.
 */
function node(mode: 'dsr' | 'nat', seed: number, arpVips: string[] | null = null, cluster = true): Built {
  const config = parseConfig(configText(mode), `<${mode}>`);
  const b = buildDataplane(config, { seed });
  const spec = configSpec(config, config.mac!);
  const services = spec.services.map((x) => ({ ...x, active: [...(typeof x.active === 'string' ? [x.active] : x.active), ...x.standby], standby: [] }));
  b.dataplane.publish(new Tables({ ...spec, services, cluster, arpVips: arpVips?.map(ip) ?? null }));
  return b;
}

interface Rec { op: string; state: number; cli: string; vip: string; cport: number; vport: number; back: string; mac: string }
function decode(buf: Uint8Array, n: number): Rec[] {
  const dv = new DataView(buf.buffer, buf.byteOffset);
  const out: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * FLOW_WIRE_BYTES;
    const ports = dv.getInt32(at + 16, true);
    out.push({
      op: REPL_OP_NAMES[buf[at]!]!, state: buf[at + 1]!,
      mac: [...buf.subarray(at + 2, at + 8)].map((x) => x.toString(16).padStart(2, '0')).join(':'),
      cli: formatIpv4(dv.getInt32(at + 8, true)), vip: formatIpv4(dv.getInt32(at + 12, true)),
      cport: ports >>> 16, vport: ports & 0xffff, back: formatIpv4(dv.getInt32(at + 20, true)),
    });
  }
  return out;
}

/** The supervisors' part: take A's journal (as the wire would carry it) and put it into B's import ring. */
function ship(a: Built, b: Built): Rec[] {
  const n = a.state.journal.readable();
  const buf = new Uint8Array(n * FLOW_WIRE_BYTES);
  t.equal(a.state.journal.copyOut(buf, 0, n), n);
  t.equal(b.state.imports.pushRecords(buf, 0, n), n);
  return decode(buf, n);
}

function drain(r: RecordRing): Rec[] {
  const n = r.readable(), buf = new Uint8Array(n * FLOW_WIRE_BYTES);
  r.copyOut(buf, 0, n);
  return decode(buf, n);
}

function send(b: Built, frame: Buffer, now: number): { verdict: number; reason: string; out: Buffer } {
  const buf = Buffer.from(frame);
  const verdict = b.dataplane.process(buf, 0, buf.length, now);
  return { verdict, reason: reasonName(b.dataplane.lastDrop), out: buf };
}

function imp(b: Built, now: number, max = 1 << 20): number { b.dataplane.setClock(now); return b.dataplane.importFlows(max); }

const C = { srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.0.7' };
const fromClient = (dst: string, dport: number, sport: number, flags: number, payload = '') =>
  tcp({ ...C, dst, srcPort: sport, dstPort: dport, flags, seq: 1001, ack: 5001, payload, ...(flags & TCP_SYN ? { options: { mss: 1460 } } : {}) });
const fromBackend = (backIp: string, backMac: string, sport: number, dport: number, flags: number, payload = '') =>
  tcp({ srcMac: backMac, dstMac: OUR_MAC, src: backIp, dst: '10.0.0.7', srcPort: sport, dstPort: dport, flags, seq: 5001, ack: 1001, payload });

// ---------------------------------------------------------------------------------------------

t.test('RecordRing: FIFO across the wrap, full refuses and counts, pushRecords takes what fits, a second view sees the same ring', async (t) => {
  const mem = new SharedArrayBuffer(ringBytes(8));
  const ring = () => new RecordRing(new Int32Array(mem, 0, RING_CTL_WORDS), new Uint8Array(mem, RING_CTL_WORDS * 4, 8 * FLOW_WIRE_BYTES));
  const prod = ring(), cons = ring();
  const mac = new Uint8Array([2, 0, 0, 0, 0, 9]);
  const out = new Uint8Array(16 * FLOW_WIRE_BYTES);
  let next = 1;
  const taken: number[] = [];
  // 5 rounds of 5 pushes and 5 takes move head and tail round an 8-record ring three times.
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 5; i++) t.ok(prod.pushFlow(REPL_NEW, FS_SYN, mac, 0, next++, 2, 3, 4), 'room');
    t.equal(cons.readable(), 5);
    t.equal(cons.copyOut(out, 0, 16), 5);
    for (const r of decode(out, 5)) taken.push(ip(r.cli));
  }
  t.same(taken, Array.from({ length: 25 }, (_, i) => i + 1), 'every record once, in order, across the wrap');
  for (let i = 0; i < 8; i++) prod.pushFlow(REPL_NEW, FS_SYN, mac, 0, 100 + i, 2, 3, 4);
  t.notOk(prod.pushFlow(REPL_NEW, FS_SYN, mac, 0, 999, 2, 3, 4), 'a full ring refuses');
  t.equal(prod.dropped, 1, 'and counts it');
  t.equal(cons.copyOut(out, 0, 3), 3, 'max is respected');
  t.same(decode(out, 3).map((r) => ip(r.cli)), [100, 101, 102]);
  // pushRecords: 3 free, 5 offered -> 3 taken, 2 dropped.
  const src = new Uint8Array(5 * FLOW_WIRE_BYTES);
  for (let i = 0; i < 5; i++) { src[i * FLOW_WIRE_BYTES] = REPL_CLOSED; src[i * FLOW_WIRE_BYTES + 8] = 200 + i; }
  t.equal(prod.pushRecords(src, 0, 5), 3);
  t.equal(prod.dropped, 3);
  t.equal(cons.copyOut(out, 0, 16), 8);
  t.same(decode(out, 8).map((r) => r.op + ':' + ip(r.cli)), [103, 104, 105, 106, 107].map((x) => 'new:' + x).concat(['closed:200', 'closed:201', 'closed:202']),
    'pushed records come out byte for byte after the earlier ones');
  const r = decode(out, 1)[0]!;
  t.same({ state: r.state, mac: r.mac, vip: ip(r.vip), cport: r.cport, vport: r.vport, back: ip(r.back) }, { state: FS_SYN, mac: '02:00:00:00:00:09', vip: 2, cport: 0, vport: 3, back: 4 });
  t.equal(cons.readable(), 0);
  t.notOk(cons.repair(), 'a sound ring is left alone');
  new Int32Array(mem, 0, RING_CTL_WORDS)[0] = 1000; // head: 1000 records ahead of the tail in an 8-record ring
  t.ok(cons.repair(), 'impossible control words: emptied');
  t.equal(prod.readable(), 0);
  t.ok(prod.pushFlow(REPL_NEW, FS_SYN, mac, 0, 1, 2, 3, 4), 'and usable again');
  t.equal(cons.readable(), 1);
  t.throws(() => new RecordRing(new Int32Array(16), new Uint8Array(24 * 6)), /power of two/, 'a capacity that is not a power of two is refused');
  t.throws(() => new RecordRing(new Int32Array(mem, 0, RING_CTL_WORDS), new Uint8Array(mem, 64, 4 * FLOW_WIRE_BYTES)), /holds a ring of 8 records, not 4/, 'memory of another ring size is refused');
});

t.test('the state carries the two rings (65,536 records each) and a new attach sees what is in them', async (t) => {
  const a = node('nat', 7);
  t.equal(a.state.journal.capacity, RING_RECORDS);
  t.equal(a.state.imports.capacity, RING_RECORDS);
  t.equal(RING_RECORDS * FLOW_WIRE_BYTES, 1.5 * 1024 * 1024, '1.5 MiB a ring');
  // A worker's records are there for the supervisor's attach of the same memory (and a new worker's).
  const st = createState({ flowCapacity: 64, neighbourCapacity: 16, halfOpenTimeoutMs: 1, establishedTimeoutMs: 1, closingTimeoutMs: 1, neighbourTtlMs: 1, seed: 1, shared: true });
  st.journal.pushFlow(REPL_NEW, FS_SYN, new Uint8Array(6), 0, 7, 8, 9, 10);
  st.imports.pushFlow(REPL_CLOSED, FS_CLOSING, new Uint8Array(6), 0, 11, 12, 13, 14);
  const other = attachState(st.memory);
  t.same(drain(other.journal).map((r) => [r.op, ip(r.cli)]), [['new', 7]]);
  t.same(drain(other.imports).map((r) => [r.op, ip(r.cli)]), [['closed', 11]]);
  t.equal(st.journal.readable(), 0, 'taken through one view, gone from the other');
});

t.test('nat: A forwards a connection, B imports its journal and forwards the next segments identically', async (t) => {
  const a = node('nat', 7), b = node('nat', 12345);
  let now = 1000 * S;
  const synA = send(a, fromClient('10.0.0.100', 80, 40001, TCP_SYN), now);
  t.equal(synA.verdict, VERDICT_TX);
  const back = ipOf(synA.out).dst, backMac = parseEthernet(synA.out)!.dst;
  t.equal(send(a, fromBackend(back, backMac, 80, 40001, TCP_SYN | TCP_ACKF), now).verdict, VERDICT_TX, 'SYN-ACK back to the client');
  const ackA = send(a, fromClient('10.0.0.100', 80, 40001, TCP_ACKF), now);
  t.equal(ackA.verdict, VERDICT_TX);
  const recs = ship(a, b);
  t.same(recs.map((r) => [r.op, r.state]), [['new', FS_SYN], ['established', FS_ESTABLISHED]], 'NEW at the SYN, ESTABLISHED at the SYN-ACK (nat sees the backend answer)');
  t.match(recs[0], { cli: '10.0.0.7', vip: '10.0.0.100', cport: 40001, vport: 80, back, mac: CLIENT_MAC }, 'the record names the backend by address, with the client MAC');

  now += 2 * S;
  t.equal(imp(b, now), 2);
  t.equal(b.state.counters[Ctr.repl_imported], 2);
  t.equal(b.state.journal.readable(), 0, 'importing never writes the journal');
  const fB = b.dataplane.flows.lookup(ip('10.0.0.7'), ip('10.0.0.100'), (40001 << 16) | 80);
  t.ok(fB >= 0, 'B has the flow');
  t.equal(b.dataplane.flows.state(fB), FS_ESTABLISHED);
  t.equal(b.dataplane.flows.lastSeen(fB), now, 'stamped with the import time');

  // The same data segment through A and through B: the same bytes out (backend, nat mapping, MACs, checksums).
  const data = fromClient('10.0.0.100', 80, 40001, TCP_ACKF | TCP_PSH, 'GET / HTTP/1.1\r\n\r\n');
  const viaA = send(a, data, now), viaB = send(b, data, now);
  t.equal(viaB.verdict, VERDICT_TX, `B forwards it (${viaB.reason})`);
  t.same(viaB.out, viaA.out, 'client -> backend: byte for byte what A sends');
  t.equal(ipOf(viaB.out).dst, back);
  t.ok(tcpOk(viaB.out));
  const reply = fromBackend(back, backMac, 80, 40001, TCP_ACKF | TCP_PSH, 'HTTP/1.1 200 OK\r\n\r\n');
  const rA = send(a, reply, now), rB = send(b, reply, now);
  t.equal(rB.verdict, VERDICT_TX, `B rewrites the backend's reply (${rB.reason})`);
  t.same(rB.out, rA.out, 'backend -> client: the same SNAT back to the VIP, to the client MAC from the record');
  t.equal(ipOf(rB.out).src, '10.0.0.100');
  t.equal(b.state.counters[Ctr.flows_adopted], 0, 'nothing adopted: the record was there');
  t.equal(b.state.counters[Drop.unknown_flow], 0);
});

t.test('dsr: the same, and adoption gives the backend the SYN got on A for every connection', async (t) => {
  const a = node('dsr', 7), b = node('dsr', 99);
  const now = 50 * S;
  const want = new Map<number, string>();
  for (let p = 41000; p < 41200; p++) {
    const r = send(a, fromClient(p % 2 ? '10.0.0.100' : '10.0.0.101', p % 2 ? 80 : 443, p, TCP_SYN), now);
    t.equal(r.verdict, VERDICT_TX);
    want.set(p, parseEthernet(r.out)!.dst);
  }
  t.equal(new Set(want.values()).size, 3, 'the SYNs spread over the three backends');
  // B never got a record (A died at once): the next segment of each connection is adopted.
  let same = 0;
  for (let p = 41000; p < 41200; p++) {
    const r = send(b, fromClient(p % 2 ? '10.0.0.100' : '10.0.0.101', p % 2 ? 80 : 443, p, TCP_ACKF), now + S);
    if (r.verdict === VERDICT_TX && parseEthernet(r.out)!.dst === want.get(p)) same++;
  }
  t.equal(same, 200, 'every adopted connection goes to the backend its SYN went to on A');
  t.equal(b.state.counters[Ctr.flows_adopted], 200);
  t.equal(b.state.counters[Ctr.flows_active], 200);
  const j = drain(b.state.journal);
  t.equal(j.length, 200, 'each adoption is journalled (the old owner, if alive, learns it)');
  t.same([...new Set(j.map((r) => `${r.op}/${r.state}`))], [`new/${FS_ESTABLISHED}`], 'as NEW, established');
  // A FIN with no flow: adopted closing; an RST with no flow: dropped as before.
  t.equal(send(b, fromClient('10.0.0.100', 80, 42001, TCP_FIN | TCP_ACKF), now).verdict, VERDICT_TX);
  t.equal(b.dataplane.flows.state(b.dataplane.flows.lookup(ip('10.0.0.7'), ip('10.0.0.100'), (42001 << 16) | 80)), FS_CLOSING);
  t.equal(send(b, fromClient('10.0.0.100', 80, 42003, TCP_RST), now).reason, 'unknown_flow', 'an RST is never adopted');
  t.equal(send(b, fromClient('10.0.0.100', 81, 42005, TCP_ACKF), now).reason, 'no_service', 'no service on that port: counted, not adopted');
});

t.test('cluster off: no journal, no adoption (as before issue 11)', async (t) => {
  const a = node('nat', 7, null, false);
  t.equal(send(a, fromClient('10.0.0.100', 80, 40001, TCP_SYN), S).verdict, VERDICT_TX);
  t.equal(a.state.journal.readable(), 0, 'nothing journalled');
  t.equal(send(a, fromClient('10.0.0.100', 80, 40003, TCP_ACKF), S).reason, 'unknown_flow');
  t.equal(a.state.counters[Ctr.flows_adopted], 0);
});

t.test('nat: a backend segment with no flow is adopted when exactly one VIP service picks that backend', async (t) => {
  const a = node('nat', 7), b = node('nat', 8);
  const now = 10 * S;
  // B knows the client's MAC (it answered the client's ARP for the VIP).
  t.equal(send(b, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), now).verdict, VERDICT_TX);
  let adopted = 0, sameAsA = 0, tried = 0;
  for (let p = 43000; p < 43100; p++) {
    const s = send(a, fromClient('10.0.0.100', 80, p, TCP_SYN), now);
    const back = ipOf(s.out).dst, backMac = parseEthernet(s.out)!.dst;
    send(a, fromBackend(back, backMac, 80, p, TCP_SYN | TCP_ACKF), now);
    send(a, fromClient('10.0.0.100', 80, p, TCP_ACKF), now);
    const reply = fromBackend(back, backMac, 80, p, TCP_ACKF | TCP_PSH, 'data');
    const rA = send(a, reply, now), rB = send(b, reply, now + S);
    tried++;
    if (rB.verdict === VERDICT_TX) { adopted++; if (rB.out.equals(rA.out)) sameAsA++; }
  }
  t.equal(adopted, tried, 'every reply of a connection B never saw is adopted (port 80 is one VIP\'s service only)');
  t.equal(sameAsA, tried, 'and rewritten exactly as A rewrites it');
  t.equal(b.state.counters[Ctr.flows_adopted], tried);
  // A reply that no service would have picked that backend for (web1 on 443 serves only web2/web3): not adopted.
  const stray = fromBackend('10.0.1.21', W1, 443, 44000, TCP_ACKF, 'x');
  t.equal(send(b, stray, now).reason, 'not_for_us', 'a backend reply no pick explains stays unknown');
  // A client this node has no ARP entry for (behind a router): left for the client's own next segment.
  const c = node('nat', 9);
  const s = send(a, fromClient('10.0.0.100', 80, 45000, TCP_SYN), now);
  t.equal(send(c, fromBackend(ipOf(s.out).dst, parseEthernet(s.out)!.dst, 80, 45000, TCP_ACKF, 'x'), now).reason, 'not_for_us');
  t.equal(send(c, fromClient('10.0.0.100', 80, 45000, TCP_ACKF), now).verdict, VERDICT_TX, 'the client side adopts it');
});

t.test('closing and expiry replicate; the sweep refreshes live flows at most every established_timeout / 4', async (t) => {
  const a = node('dsr', 7), b = node('dsr', 8);
  let now = 100 * S;
  for (const p of [46001, 46002, 46003]) {
    send(a, fromClient('10.0.0.100', 80, p, TCP_SYN), now);
    send(a, fromClient('10.0.0.100', 80, p, TCP_ACKF), now);
  }
  ship(a, b); imp(b, now);
  const key = (p: number) => b.dataplane.flows.lookup(ip('10.0.0.7'), ip('10.0.0.100'), (p << 16) | 80);
  t.equal(b.dataplane.flows.state(key(46001)), FS_ESTABLISHED);
  // 46001 closes on A.
  t.equal(send(a, fromClient('10.0.0.100', 80, 46001, TCP_FIN | TCP_ACKF), now).verdict, VERDICT_TX);
  const closed = ship(a, b);
  t.same(closed.map((r) => r.op), ['closed']);
  imp(b, now);
  t.equal(b.dataplane.flows.state(key(46001)), FS_CLOSING, 'closing on B too');

  // 46002 stays busy on A; 46003 goes quiet. A quarter of the established timeout later the sweep
  // refreshes only the busy one (once), and later expires the quiet one.
  now += EST_MS / 4 + S;
  send(a, fromClient('10.0.0.100', 80, 46002, TCP_ACKF), now);
  a.dataplane.sweep(now, 1 << 20);
  a.dataplane.sweep(now + S, 1 << 20);
  const refresh = ship(a, b);
  t.same(refresh.map((r) => `${r.op}:${r.cport}`).sort(), ['expired:46001', 'refresh:46002'],
    'one REFRESH, for the flow used since it was last sent (and the closed flow\'s expiry after the closing timeout)');
  t.equal(refresh.find((r) => r.op === 'refresh')!.state, FS_ESTABLISHED);
  imp(b, now + S);
  t.equal(b.dataplane.flows.lastSeen(key(46002)), now + S, 'the refresh keeps B\'s copy fresh');
  now += EST_MS - EST_MS / 4;
  a.dataplane.sweep(now, 1 << 20);
  const exp = ship(a, b);
  t.ok(exp.some((r) => r.op === 'expired' && r.cport === 46003), 'the quiet flow\'s expiry is journalled');
  t.ok(exp.every((r) => r.op === 'expired'), `only expiries (${exp.map((r) => r.op + ':' + r.cport)})`);
  t.equal(exp.find((r) => r.cport === 46003)!.state, FS_ESTABLISHED, 'with the state it had');
  // B's copy of 46003 is as old as A's and idles out on its own: the EXPIRED has nothing left to close there.
  imp(b, now);
  t.equal(key(46003), -1);
  t.ok(key(46002) >= 0, 'the refreshed flow lives on at B');
});

t.test('a full journal is counted (repl_journal_dropped), and the flow is still forwarded', async (t) => {
  const a = node('dsr', 7);
  const mac = new Uint8Array(6);
  while (a.state.journal.pushFlow(REPL_REFRESH, FS_ESTABLISHED, mac, 0, 1, 2, 3, 4)) { /* fill */ }
  const before = a.state.journal.dropped;
  t.equal(send(a, fromClient('10.0.0.100', 80, 47000, TCP_SYN), S).verdict, VERDICT_TX, 'forwarded all the same');
  t.equal(a.state.counters[Ctr.repl_journal_dropped], 1);
  t.equal(a.state.journal.dropped, before + 1);
});

t.test('import: bad records rejected and counted, unknown backends skipped, upsert rules', async (t) => {
  const b = node('nat', 8);
  const rec = (o: { op?: number; st?: number; cli?: string; vip?: string; cport?: number; vport?: number; back?: string }) => {
    const r = new Uint8Array(FLOW_WIRE_BYTES), dv = new DataView(r.buffer);
    r[0] = o.op ?? REPL_NEW; r[1] = o.st ?? FS_ESTABLISHED;
    r.set([2, 0xaa, 0, 0, 0, 7], 2);
    dv.setInt32(8, o.cli === undefined ? ip('10.0.0.7') : ip(o.cli), true);
    dv.setInt32(12, o.vip === undefined ? ip('10.0.0.100') : ip(o.vip), true);
    dv.setInt32(16, ((o.cport ?? 48000) << 16) | (o.vport ?? 80), true);
    dv.setInt32(20, o.back === undefined ? ip('10.0.1.22') : ip(o.back), true);
    return r;
  };
  const put = (...rs: Uint8Array[]) => { for (const r of rs) t.equal(b.state.imports.pushRecords(r, 0, 1), 1); };
  const now = 20 * S;
  put(rec({ op: 0 }), rec({ op: 6 }), rec({ st: 0 }), rec({ st: 1 }), rec({ st: 5 }), rec({ cli: '0.0.0.0' }), rec({ vip: '0.0.0.0' }),
    rec({ back: '0.0.0.0' }), rec({ cport: 0 }), rec({ vport: 0 }));
  t.equal(imp(b, now), 10);
  t.equal(b.state.counters[Ctr.repl_rejected], 10, 'impossible op or state, an address or port 0: rejected');
  put(rec({ back: '10.9.9.9' }));
  imp(b, now);
  t.equal(b.state.counters[Ctr.repl_no_backend], 1, 'a backend these tables do not have: skipped');
  t.equal(b.state.counters[Ctr.flows_active], 0, 'none of them made a flow');

  const fl = b.dataplane.flows, k = () => fl.lookup(ip('10.0.0.7'), ip('10.0.0.100'), (48000 << 16) | 80);
  put(rec({ st: FS_SYN }));
  imp(b, now);
  t.equal(fl.state(k()), FS_SYN, 'absent: inserted with its state');
  t.equal(fl.backendIp(k()) | 0, ip('10.0.1.22'));
  t.equal(fl.backend(k()), b.tables.backendSlot('web2'), 'the backend address maps to the local slot');
  put(rec({ op: REPL_ESTABLISHED, st: FS_ESTABLISHED }), rec({ op: REPL_REFRESH, st: FS_SYN }));
  imp(b, now);
  t.equal(fl.state(k()), FS_ESTABLISHED, 'the state moves forward only');
  put(rec({ op: REPL_REFRESH, st: FS_ESTABLISHED, back: '10.0.1.23' }));
  imp(b, now);
  t.equal(fl.backendIp(k()) | 0, ip('10.0.1.22'), 'another backend, not a NEW: ours is kept');
  put(rec({ op: REPL_NEW, st: FS_SYN, back: '10.0.1.23' }));
  imp(b, now);
  t.equal(fl.backendIp(k()) | 0, ip('10.0.1.23'), 'another backend in a NEW (the 5-tuple reused there): replaced');
  t.equal(fl.state(k()), FS_SYN);
  t.equal(b.state.counters[Ctr.flows_active], 1);
  // nat: the replacement took the backend-side mapping with it (the backend's reply finds it).
  const reply = fromBackend('10.0.1.23', W3, 80, 48000, TCP_SYN | TCP_ACKF);
  t.equal(send(b, reply, now).verdict, VERDICT_TX, 'the nat reverse entry of an imported flow works');
  t.same(drain(b.state.journal).map((r) => r.op), ['established'], 'the packet it forwarded is journalled, as any');
  put(rec({ op: REPL_CLOSED, st: FS_ESTABLISHED, back: '10.0.1.23' }));
  imp(b, now);
  t.equal(fl.state(k()), FS_CLOSING, 'CLOSED: closing');
  put(rec({ op: REPL_ESTABLISHED, st: FS_ESTABLISHED, back: '10.0.1.23' }));
  imp(b, now);
  t.equal(fl.state(k()), FS_CLOSING, 'closing does not go back to established');
  put(rec({ op: REPL_NEW, st: FS_SYN, back: '10.0.1.23' }));
  imp(b, now);
  t.equal(fl.state(k()), FS_SYN, 'but a NEW (the 5-tuple reused by a new connection) reopens it');
  put(rec({ op: REPL_CLOSED, st: FS_SYN, back: '10.0.1.23' }));
  imp(b, now);
  put(rec({ op: REPL_EXPIRED, cport: 48002 }));
  imp(b, now);
  t.equal(fl.lookup(ip('10.0.0.7'), ip('10.0.0.100'), (48002 << 16) | 80), -1, 'EXPIRED of a flow we do not have: nothing inserted');
  // nat: a record whose backend-side mapping another flow holds (same client, ports and backend, another VIP).
  put(rec({ op: REPL_NEW, cport: 48004, vport: 443, vip: '10.0.0.101', back: '10.0.1.22' }), rec({ op: REPL_NEW, cport: 48004, vport: 443, vip: '10.0.0.100', back: '10.0.1.22' }));
  const rej = b.state.counters[Ctr.repl_rejected]!;
  imp(b, now);
  t.equal(b.state.counters[Ctr.repl_rejected], rej + 1, 'a nat mapping another flow holds: rejected');
  t.equal(b.state.journal.readable(), 0, 'nothing of this was journalled');
  // Bounded per call.
  for (let i = 0; i < 10; i++) put(rec({ op: REPL_REFRESH, cport: 49000 + i }));
  t.equal(imp(b, now, 4), 4, 'at most max records per call');
  t.equal(b.state.imports.readable(), 6);
});

t.test('ARP: answered only for arpVips; a peer\'s ARP for a VIP we do not own is not a conflict', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['request for an owned VIP', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), 'tx'],
    ['request for the owned nat gateway', arp({ src: W1, senderIp: '10.0.1.21', targetIp: '10.0.1.1' }), 'tx'],
    ['request for a VIP another node owns', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.101' }), 'arp_not_owner'],
    ['request for another address', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.5' }), 'arp_not_for_vip'],
    ['peer\'s gratuitous ARP (request) for the VIP it owns', arp({ src: CLIENT2_MAC, senderIp: '10.0.0.101', targetIp: '10.0.0.101' }), 'arp_peer_owner'],
    ['peer\'s gratuitous ARP (reply) for the VIP it owns', arp({ src: CLIENT2_MAC, oper: ARP_OP_REPLY, senderIp: '10.0.0.101', targetIp: '10.0.0.101' }), 'arp_peer_owner'],
    ['another host\'s gratuitous ARP for a VIP we own', arp({ src: CLIENT2_MAC, senderIp: '10.0.0.100', targetIp: '10.0.0.100' }), 'arp_conflict'],
  ];
  for (const [desc, frame, want] of cases) {
    const b = node('nat', 7, ['10.0.0.100', '10.0.1.1']);
    const r = send(b, frame, S);
    t.equal(r.reason, want, desc);
    if (want === 'tx') t.equal(parseArp(r.out, 14, r.out.length - 14)!.senderMac, OUR_MAC);
    else t.equal(r.verdict, VERDICT_DROP);
  }
  const none = node('nat', 7, []);
  t.equal(send(none, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), S).reason, 'arp_not_owner', 'arpVips []: a standby answers nothing');
  t.equal(none.state.counters[Drop.arp_not_owner], 1);
  const peer = send(none, arp({ src: CLIENT2_MAC, senderIp: '10.0.0.100', targetIp: '10.0.0.100' }), S);
  t.equal(peer.reason, 'arp_peer_owner');
  t.equal(none.dataplane.neighbours.lookup(ip('10.0.0.100')), -1, 'the owner\'s VIP is never learned as a neighbour');
  // Frames for a VIP we do not own are still forwarded (a client with a stale ARP cache during a hand-over).
  t.equal(send(none, fromClient('10.0.0.101', 443, 40001, TCP_SYN), S).verdict, VERDICT_TX);
  const all = node('nat', 7, null);
  t.equal(send(all, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.101' }), S).reason, 'tx', 'arpVips null: every VIP, as today');
});

t.test('controller.setOwnership: operational (no generation bump), republishes only on a change; VipView.arp', async (t) => {
  const config = parseConfig(configText('nat'), '<nat>');
  const built = buildDataplane(config, { seed: 3 });
  const ctl = new Controller({ config, port: built.port, mac: config.mac!, stateFile: null, clock: () => 5000 });
  const gen = ctl.status().generation;
  t.same(ctl.vips().map((v) => [v.vip, v.arp]), [['10.0.0.100', true], ['10.0.0.101', true], ['10.0.1.1', true]], 'no cluster: every VIP answered');
  t.equal(built.dataplane.currentTables.cluster, 0);
  ctl.setOwnership({ arpVips: [ip('10.0.0.101'), ip('10.0.1.1')], cluster: true });
  const t1 = built.dataplane.currentTables;
  t.equal(t1.cluster, 1, 'published with the cluster on');
  t.same(ctl.vips().map((v) => [v.vip, v.arp]), [['10.0.0.100', false], ['10.0.0.101', true], ['10.0.1.1', true]]);
  t.equal(send(built, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), S).reason, 'arp_not_owner');
  ctl.setOwnership({ arpVips: [ip('10.0.1.1'), ip('10.0.0.101'), ip('10.0.1.1')], cluster: true });
  t.equal(built.dataplane.currentTables, t1, 'the same ownership (another order): nothing republished');
  t.equal(ctl.status().generation, gen, 'no generation bump');
  ctl.setOwnership({ arpVips: null, cluster: true });
  t.equal(send(built, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), S).reason, 'tx');
  // A reload keeps the ownership (it is operational state the cluster runtime owns).
  ctl.setOwnership({ arpVips: [], cluster: true });
  ctl.refreshOperational(6000);
  t.equal(built.dataplane.currentTables.cluster, 1, 'a health republish keeps it');
  t.same(ctl.vips().map((v) => v.arp), [false, false, false]);
});

// ---- real captures: other people's TCP and ARP, through a takeover ----

const PCAPS = path.join(__dirname, '..', '..', '..', 'shared', 'pcaps');

t.test('a real HTTP exchange (gopacket test_ethernet) handed from A to B mid-connection: B sends what A would have', async (t) => {
  const file = path.join(PCAPS, 'gopacket-test_ethernet.pcap');
  if (!fs.existsSync(file)) { t.plan(0, `${file} is missing (the shared captures: ../shared/pcaps)`); return; }
  const frames = readCaptureFile(file).frames.map((f) => Buffer.from(f.data));
  // vipgate in the real server's place (10.1.1.1, its MAC), dsr to two backends sharing new flows.
  const text = `mac: "c4:39:3a:02:a9:2a"\nmode: dsr\nvips: [10.1.1.1]\nbackends:\n  - { name: web1, ip: 10.1.1.21, mac: "${W1}" }\n  - { name: web2, ip: 10.1.1.22, mac: "${W2}" }\n` +
    'services:\n  - { vip: 10.1.1.1, port: 80, active: web1, standby: [web2] }\n';
  const mk = (seed: number) => {
    const config = parseConfig(text, '<gopacket>');
    const b = buildDataplane(config, { seed });
    const spec = configSpec(config, config.mac!);
    b.dataplane.publish(new Tables({ ...spec, services: spec.services.map((x) => ({ ...x, active: ['web1', 'web2'], standby: [] })), cluster: true }));
    return b;
  };
  const runAll = (b: Built, fs: Buffer[], now: number) => fs.map((f) => { const r = send(b, f, now); return r.verdict === VERDICT_TX ? r.out : null; });
  const alone = runAll(mk(1), frames, S);
  const sent = alone.filter((x) => x !== null).length;
  t.equal(sent, 5, 'A alone forwards the client\'s 5 segments');
  // The handshake (SYN, the server's SYN-ACK, the client's ACK) through A, then A is gone.
  const cut = 3;
  for (const replicate of [true, false]) {
    const a = mk(1), b = mk(2);
    const head = runAll(a, frames.slice(0, cut), S);
    if (replicate) { ship(a, b); imp(b, S); }
    const tail = runAll(b, frames.slice(cut), 2 * S);
    t.same([...head, ...tail], alone, replicate ? 'with the records: every frame as A alone' : 'without them (adopted by the pick): every frame as A alone');
    t.equal(b.state.counters[Ctr.flows_adopted], replicate ? 0 : 1);
  }
});

t.test('a real gratuitous ARP (cs-ppa2e-arp_gratuitous): the owner\'s announcement, a conflict only for a VIP we answer for', async (t) => {
  const file = path.join(PCAPS, 'cs-ppa2e-arp_gratuitous.pcap');
  if (!fs.existsSync(file)) { t.plan(0, `${file} is missing (the shared captures: ../shared/pcaps)`); return; }
  const garp = Buffer.from(readCaptureFile(file).frames[0]!.data);
  const text = `mac: "02:00:5e:00:00:01"\nvips: [24.6.125.19]\nbackends: []\nservices: []\n`;
  for (const [own, want] of [[[] as string[], 'arp_peer_owner'], [['24.6.125.19'], 'arp_conflict']] as const) {
    const config = parseConfig(text, '<garp>');
    const b = buildDataplane(config, { seed: 1 });
    b.dataplane.publish(new Tables({ ...configSpec(config, config.mac!), cluster: true, arpVips: own.map(ip) }));
    t.equal(send(b, garp, S).reason, want, own.length ? 'we answer for it: a conflict' : 'a peer answers for it: its announcement');
  }
});

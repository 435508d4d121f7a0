// Packet path fixtures for ICMP: echo answered (VLANs kept), the rate limit, echo off, errors
// about a flow carried to its other end in dsr and nat (both ways), and every kind of ICMP that
// is dropped. Checksums are verified by full recomputation, never by the incremental formula
// that wrote them.
import t from 'tap';
import { tcp, icmp, ipDatagram, vlan } from './helpers/frames';
import { build, reasonName, OUR_MAC, CLIENT_MAC, WEB1_MAC, WEB2_MAC } from './helpers/dp';
import { ipOf } from './helpers/inspect';
import { parseEthernet, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from '../src/wire/ethernet';
import { parseIpv4Header, IPPROTO_UDP } from '../src/wire/ipv4';
import { parseIcmp, IcmpRepr, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_UNREACH_FRAG_NEEDED,
  ICMP_TIME_EXCEEDED, ICMP_REDIRECT, ICMP_PARAM_PROBLEM, ICMP_UNREACH_PORT } from '../src/wire/icmp';
import { tcpChecksumOk, TCP_SYN, TCP_ACKF, TCP_PSH } from '../src/wire/tcp';
import { parseIpv4 } from '../src/wire/addr';
import { checksum } from '../src/wire/checksum';
import { Ctr, Drop } from '../src/dataplane/counters';
import { Tables } from '../src/tables/services';
import { configSpec } from '../src/control/model';
import { VERDICT_TX } from '../src/dataplane/dataplane';
import { startHarness, defaultYaml } from './helpers/control-harness';

type B = ReturnType<typeof build>;

function run(b: B, frame: Buffer, now = 0): { verdict: number; reason: string; out: Buffer } {
  const buf = Buffer.from(frame);
  const verdict = b.dataplane.process(buf, 0, buf.length, now);
  return { verdict, reason: reasonName(b.dataplane.lastDrop), out: buf };
}

function l3Of(f: Buffer): number { return parseEthernet(f)!.l3; }

/** The ICMP message of a frame, parsed; its checksum recomputed from scratch. */
function icmpOf(f: Buffer): IcmpRepr & { fullChecksumOk: boolean } {
  const ip = ipOf(f), l4 = l3Of(f) + ip.ihl, len = ip.totalLength - ip.ihl;
  const r = parseIcmp(f, l4, len);
  if (typeof r === 'string') throw new Error(r);
  return { ...r, fullChecksumOk: checksum(f, l4, len) === 0 };
}

/** Recompute an IPv4 header checksum from scratch (0 when it verifies). */
function ipHeaderSumOk(buf: Uint8Array, l3: number): boolean {
  return checksum(buf, l3, (buf[l3]! & 0x0f) * 4) === 0;
}

const CLIENT = '10.0.0.7';
const ROUTER_MAC = '02:ee:00:00:00:01';
const echoReq = (over: Partial<Parameters<typeof icmp>[0]> = {}, data = Buffer.from('abcdefghijklmnopqrstuvwabcdefghi')) =>
  icmp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.100', ttl: 61, ipId: 0x1234, icmp: { type: ICMP_ECHO_REQUEST, id: 0x4242, seq: 7, data }, ...over });

t.test('echo: answered in place, from the VIP, checksums right, same length', async (t) => {
  const b = build('dsr');
  const req = echoReq();
  const r = run(b, req);
  t.equal(r.reason, 'tx');
  t.equal(r.out.length, req.length, 'same length (padding kept)');
  const e = parseEthernet(r.out)!;
  t.same([e.dst, e.src, e.vlans], [CLIENT_MAC, OUR_MAC, []], 'back to the requester, from our MAC');
  const ip = ipOf(r.out);
  t.same([ip.src, ip.dst, ip.ttl, ip.id, ip.protocol], ['10.0.0.100', CLIENT, 64, 0x1234, 1]);
  t.ok(ipHeaderSumOk(r.out, e.l3), 'IP header checksum verifies (full recomputation)');
  const m = icmpOf(r.out);
  t.same([m.type, m.code, m.id, m.seq], [ICMP_ECHO_REPLY, 0, 0x4242, 7]);
  t.ok(m.fullChecksumOk, 'ICMP checksum verifies (full recomputation)');
  t.same(Buffer.from(m.data), Buffer.from('abcdefghijklmnopqrstuvwabcdefghi'), 'data sent back as it came');
  t.equal(b.state.counters[Ctr.icmp_echo_replies], 1);
  t.equal(b.state.counters[Ctr.flows_created], 0, 'no flow for a ping');

  // nat: the same, and the gateway address answers too (backends ping their gateway)
  const n = build('nat', 'nat_gateway: 10.0.1.1');
  t.equal(run(n, echoReq()).reason, 'tx', 'nat: VIP answers');
  const gw = run(n, echoReq({ srcMac: WEB1_MAC, src: '10.0.1.21', dst: '10.0.1.1' }));
  t.equal(gw.reason, 'tx', 'nat: the gateway address answers');
  t.same([ipOf(gw.out).src, ipOf(gw.out).dst, parseEthernet(gw.out)!.dst], ['10.0.1.1', '10.0.1.21', WEB1_MAC]);

  // odd sizes: empty data and an odd number of bytes (the checksum's last byte is padded)
  for (const data of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(1472, 0xff)]) {
    const o = run(build('dsr'), echoReq({}, data));
    t.equal(o.reason, 'tx', `${data.length} bytes of data`);
    t.ok(icmpOf(o.out).fullChecksumOk && ipHeaderSumOk(o.out, l3Of(o.out)), `${data.length} bytes: checksums verify`);
  }
});

t.test('echo on VLANs: the reply carries the same tags (802.1Q and QinQ)', async (t) => {
  for (const tags of [[vlan(42)], [vlan(200, ETHERTYPE_QINQ), vlan(2001, ETHERTYPE_VLAN)]]) {
    const b = build('dsr');
    const r = run(b, echoReq({ vlans: tags }));
    t.equal(r.reason, 'tx');
    const e = parseEthernet(r.out)!;
    t.same([e.vlans, e.dst, e.src], [tags, CLIENT_MAC, OUR_MAC], `tags ${tags.map((x) => x.vid).join('/')}`);
    t.ok(icmpOf(r.out).fullChecksumOk && ipHeaderSumOk(r.out, e.l3), 'checksums verify');
    t.equal(icmpOf(r.out).type, ICMP_ECHO_REPLY);
  }
});

t.test('echo rate limit: a token bucket on the packet clock', async (t) => {
  const b = build('dsr', 'icmp: { echo_rate: 10/s, echo_burst: 3 }');
  const c = b.state.counters;
  const at = (ms: number) => run(b, echoReq(), ms).reason;
  t.same([at(1000), at(1000), at(1000), at(1000), at(1000)], ['tx', 'tx', 'tx', 'icmp_rate_limited', 'icmp_rate_limited'], 'the burst, then limited');
  t.equal(at(1050), 'icmp_rate_limited', '50 ms later: half a token');
  t.equal(at(1100), 'tx', '100 ms after the burst: one token (10/s)');
  t.equal(at(1100), 'icmp_rate_limited');
  t.equal(at(500), 'icmp_rate_limited', 'a clock that goes back refills nothing');
  t.equal(at(1150), 'icmp_rate_limited', '...nor does its way forward again before the latest time seen (1100) plus 100 ms');
  t.equal(at(1200), 'tx', 'past it, the rate applies as before');
  t.same([at(60_000), at(60_000), at(60_000), at(60_000)], ['tx', 'tx', 'tx', 'icmp_rate_limited'], 'a long pause refills to the burst, not beyond');
  t.equal(c[Drop.icmp_rate_limited], 7);
  t.equal(c[Ctr.icmp_echo_replies], 8);
  const first = run(build('dsr'), echoReq(), 0);
  t.equal(first.reason, 'tx', 'a fresh bucket is full, even at time 0');
});

t.test('echo off, and turned on again by publishing new tables (reload)', async (t) => {
  const b = build('dsr', 'icmp: { echo: false }');
  const req = echoReq();
  const r = run(b, req);
  t.equal(r.reason, 'icmp_echo_off');
  t.same(r.out, req, 'a dropped frame is left as it was');
  b.dataplane.publish(new Tables({ ...configSpec(b.config, b.tables.mac), icmp: { echo: true, echoRate: 1000, echoBurst: 50 } }, b.tables));
  t.equal(run(b, req, 1).reason, 'tx');
});

/** A segment vipgate's flow carries, as its sender put it on the wire (for quoting). */
const segment = (src: string, sport: number, dst: string, dport: number, payload: number, ttl = 64) =>
  tcp({ srcMac: '02:00:00:00:00:99', dstMac: '02:00:00:00:00:98', src, dst, srcPort: sport, dstPort: dport, flags: TCP_ACKF | TCP_PSH, seq: 77, ack: 88, ttl, payload: Buffer.alloc(payload, 0x5a) });

/** A router's "fragmentation needed" about `quoted` (cut to `quoteLen` bytes), to `dst`. */
const fragNeeded = (o: { srcMac?: string; src?: string; dst: string; quoted: Buffer; quoteLen?: number; mtu?: number; ttl?: number }) =>
  icmp({ srcMac: o.srcMac ?? ROUTER_MAC, dstMac: OUR_MAC, src: o.src ?? '10.0.0.254', dst: o.dst, ttl: o.ttl ?? 255, df: false,
    icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: o.mtu ?? 1400, data: ipDatagram(o.quoted, o.quoteLen ?? 548) } });

t.test('dsr: an error about a VIP->client segment goes to the backend, only the MACs rewritten', async (t) => {
  const b = build('dsr');
  t.equal(run(b, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.100', srcPort: 40000, dstPort: 80, flags: TCP_SYN })).reason, 'tx', 'flow to web1');
  // The backend answers the client directly from the VIP; a router on the way cannot forward
  // 1500 bytes with DF and tells the VIP. The quote: as much as fits in 576 bytes (Linux), or 8.
  for (const quoteLen of [548, 28, 20 + 20]) {
    const err = fragNeeded({ dst: '10.0.0.100', quoted: segment('10.0.0.100', 80, CLIENT, 40000, 1448), quoteLen });
    const r = run(b, err, 1);
    t.equal(r.reason, 'tx', `quote of ${quoteLen} bytes`);
    t.same([parseEthernet(r.out)!.dst, parseEthernet(r.out)!.src], [WEB1_MAC, OUR_MAC], 'to web1, from us');
    t.same(r.out.subarray(12), err.subarray(12), 'dsr leaves everything after the MACs alone');
    t.equal(icmpOf(r.out).nextHopMtu, 1400);
  }
  // time exceeded and port unreachable about the same flow go the same way
  for (const [type, code] of [[ICMP_TIME_EXCEEDED, 0], [ICMP_DEST_UNREACH, ICMP_UNREACH_PORT], [ICMP_PARAM_PROBLEM, 0]] as const) {
    const e = icmp({ srcMac: ROUTER_MAC, dstMac: OUR_MAC, src: '10.0.0.254', dst: '10.0.0.100', icmp: { type, code, data: ipDatagram(segment('10.0.0.100', 80, CLIENT, 40000, 0)) } });
    t.equal(run(b, e, 2).reason, 'tx', `type ${type} code ${code}`);
  }
  t.equal(b.state.counters[Ctr.icmp_errors_to_backend], 6);
  t.equal(b.state.counters[Ctr.forwarded], 1, 'ICMP is not counted as forwarded TCP');
  t.equal(b.dataplane.flows.state(b.dataplane.flows.lookup(parseIpv4(CLIENT)! | 0, parseIpv4('10.0.0.100')! | 0, (40000 << 16) | 80)), 2, 'the flow is still half-open: errors do not advance it');
});

t.test('nat: an error to the VIP is rewritten for the backend (outer dst and quoted src), checksums recomputed', async (t) => {
  const b = build('nat');
  t.equal(run(b, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.101', srcPort: 40000, dstPort: 80, flags: TCP_SYN })).reason, 'tx', 'flow to web1 (10.0.1.21)');
  // What the backend sent (B -> C) and what vipgate made of it (V -> C) are both real segments with
  // valid checksums; the router quotes the second, web1 must get a quote of the first.
  for (const [payload, quoteLen] of [[100, 548], [1448, 548], [0, 28], [0, 38]] as const) {
    const sentByBackend = segment('10.0.1.21', 80, CLIENT, 40000, payload, 63);
    const sentByVipgate = segment('10.0.0.101', 80, CLIENT, 40000, payload, 63);
    const err = fragNeeded({ dst: '10.0.0.101', quoted: sentByVipgate, quoteLen, ttl: 250 });
    const r = run(b, err, 1);
    const what = `${payload}-byte segment, ${quoteLen}-byte quote`;
    t.equal(r.reason, 'tx', what);
    const e = parseEthernet(r.out)!;
    t.same([e.dst, e.src], [WEB1_MAC, OUR_MAC], `${what}: to web1`);
    const ip = ipOf(r.out);
    t.same([ip.src, ip.dst, ip.ttl], ['10.0.0.254', '10.0.1.21', 249], `${what}: outer dst is the backend, TTL down by one`);
    t.ok(ipHeaderSumOk(r.out, e.l3), `${what}: outer IP checksum verifies`);
    const m = icmpOf(r.out);
    t.ok(m.fullChecksumOk, `${what}: ICMP checksum verifies`);
    t.equal(m.nextHopMtu, 1400);
    const want = ipDatagram(sentByBackend, quoteLen);
    t.same(Buffer.from(m.data), Buffer.from(want), `${what}: the quote is byte for byte what web1 sent (quoted IP and TCP checksums included)`);
    const q = m.data;
    t.ok(ipHeaderSumOk(q, 0), `${what}: quoted IP checksum verifies`);
    if (quoteLen >= 20 + 20 + payload) t.ok(tcpChecksumOk(q, 20, 20 + payload, parseIpv4('10.0.1.21')!, parseIpv4(CLIENT)!), `${what}: quoted TCP checksum verifies`);
  }
  t.equal(b.state.counters[Ctr.icmp_errors_to_backend], 4);
  t.equal(run(b, fragNeeded({ dst: '10.0.0.101', quoted: segment('10.0.0.101', 80, CLIENT, 40000, 0), ttl: 1 }), 2).reason, 'ttl_exceeded', 'nat routes: TTL 1 cannot go on');
});

t.test('nat: an error from the backend about a client segment goes back to the client as about the VIP', async (t) => {
  const b = build('nat');
  const syn = tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.101', srcPort: 40000, dstPort: 80, flags: TCP_SYN });
  t.equal(run(b, syn).reason, 'tx');
  for (const [origin, srcIp, wantSrc] of [['web1 itself', '10.0.1.21', '10.0.0.101'], ['a router on the backends\' side', '10.0.1.254', '10.0.1.254']] as const) {
    for (const quoteLen of [548, 28]) {
      // the client's segment as it left the client (C -> V) and as web1 got it from vipgate (C -> B)
      const sentByClient = segment(CLIENT, 40000, '10.0.0.101', 80, 1448, 64);
      const gotByBackend = segment(CLIENT, 40000, '10.0.1.21', 80, 1448, 64);
      const err = icmp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: srcIp, dst: CLIENT, ttl: 64, df: false,
        icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1300, data: ipDatagram(gotByBackend, quoteLen) } });
      const r = run(b, err, 1);
      const what = `from ${origin}, ${quoteLen}-byte quote`;
      t.equal(r.reason, 'tx', what);
      const e = parseEthernet(r.out)!;
      t.same([e.dst, e.src], [CLIENT_MAC, OUR_MAC], `${what}: to the MAC the client's frames came from`);
      const ip = ipOf(r.out);
      t.same([ip.src, ip.dst, ip.ttl], [wantSrc, CLIENT, 63], `${what}: outer addresses`);
      t.ok(ipHeaderSumOk(r.out, e.l3), `${what}: outer IP checksum verifies`);
      const m = icmpOf(r.out);
      t.ok(m.fullChecksumOk, `${what}: ICMP checksum verifies`);
      t.equal(m.nextHopMtu, 1300);
      t.same(Buffer.from(m.data), Buffer.from(ipDatagram(sentByClient, quoteLen)), `${what}: the quote is what the client sent, to the VIP`);
    }
  }
  t.equal(b.state.counters[Ctr.icmp_errors_to_client], 4);
  // Not about a flow: routed traffic vipgate does not carry, as before.
  const stray = icmp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: CLIENT,
    icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1300, data: ipDatagram(segment(CLIENT, 40001, '10.0.1.21', 80, 0)) } });
  t.equal(run(b, stray, 2).reason, 'not_for_us', 'an error about no flow of ours');
  const ping = icmp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '8.8.8.8', icmp: { type: ICMP_ECHO_REQUEST, id: 1, seq: 1 } });
  t.equal(run(b, ping, 2).reason, 'not_for_us', 'a backend pinging past its gateway');
  const misdirected = icmp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '10.0.0.8',
    icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1300, data: ipDatagram(segment(CLIENT, 40000, '10.0.1.21', 80, 0)) } });
  t.equal(run(b, misdirected, 2).reason, 'not_for_us', 'an error not sent to the quoted source');
  const bad = Buffer.from(icmp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: CLIENT,
    icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1300, data: ipDatagram(segment(CLIENT, 40000, '10.0.1.21', 80, 0)) } }));
  bad[l3Of(bad) + 20 + 7] ^= 0x01; // the MTU, under the checksum
  t.equal(run(b, bad, 2).reason, 'icmp_bad_checksum', 'about our flow but corrupted');
  // in dsr the same frames are not vipgate's business at all
  const d = build('dsr');
  run(d, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.101', srcPort: 40000, dstPort: 80, flags: TCP_SYN }));
  t.equal(run(d, stray, 2).reason, 'not_for_us', 'dsr: ICMP to a client is not_for_us');
});

t.test('ICMP that is dropped, each under its own reason, and left as it was', async (t) => {
  const toVip = (type: number, code: number, data: Uint8Array, over: Partial<Parameters<typeof icmp>[0]> = {}) =>
    icmp({ srcMac: ROUTER_MAC, dstMac: OUR_MAC, src: '10.0.0.254', dst: '10.0.0.100', icmp: { type, code, data, rest: 0 }, ...over });
  const known = ipDatagram(segment('10.0.0.100', 80, CLIENT, 40000, 0));
  const badCsum = Buffer.from(echoReq()); badCsum[l3Of(badCsum) + 20 + 2] ^= 0xff;
  const short = Buffer.from(echoReq()); { const l3 = l3Of(short); short[l3 + 3] = 24; short[l3 + 10] = 0; short[l3 + 11] = 0; short.writeUInt16BE(checksum(short, l3, 20), l3 + 10); }
  const badQuoteIhl = Uint8Array.from(known); badQuoteIhl[0] = 0x44;
  const quoteV6 = Uint8Array.from(known); quoteV6[0] = 0x65;
  const udpQuote = Uint8Array.from(known); udpQuote[9] = IPPROTO_UDP;
  const laterFrag = Uint8Array.from(known); laterFrag[6] = 0x00; laterFrag[7] = 0xb9;
  const cases: Array<[string, Buffer, string]> = [
    ['ICMP checksum wrong', badCsum, 'icmp_bad_checksum'],
    ['4 bytes of ICMP (IP total length 24)', short, 'truncated'],
    ['error quoting 20 bytes of IP and 4 of TCP', toVip(ICMP_DEST_UNREACH, 4, known.subarray(0, 24)), 'icmp_bad_quote'],
    ['error quoting 12 bytes', toVip(ICMP_DEST_UNREACH, 4, known.subarray(0, 12)), 'icmp_bad_quote'],
    ['error quoting an IHL-4 header', toVip(ICMP_DEST_UNREACH, 4, badQuoteIhl), 'icmp_bad_quote'],
    ['error quoting IP version 6', toVip(ICMP_TIME_EXCEEDED, 0, quoteV6), 'icmp_bad_quote'],
    ['error quoting a flow that does not exist', toVip(ICMP_DEST_UNREACH, 4, ipDatagram(segment('10.0.0.100', 80, CLIENT, 40001, 0))), 'icmp_unknown_flow'],
    ['error quoting UDP', toVip(ICMP_DEST_UNREACH, 3, udpQuote), 'icmp_unknown_flow'],
    ['error quoting a later fragment (no ports)', toVip(ICMP_DEST_UNREACH, 4, laterFrag), 'icmp_unknown_flow'],
    ['error quoting a segment not from the VIP', toVip(ICMP_DEST_UNREACH, 4, ipDatagram(segment('10.0.0.55', 80, CLIENT, 40000, 0))), 'icmp_unknown_flow'],
    ['error to one VIP about another', toVip(ICMP_DEST_UNREACH, 4, known, { dst: '10.0.0.101' }), 'icmp_unknown_flow'],
    ['echo reply to a VIP', toVip(ICMP_ECHO_REPLY, 0, Buffer.from('hi')), 'icmp_unsupported'],
    ['redirect to a VIP', toVip(ICMP_REDIRECT, 1, known), 'icmp_unsupported'],
    ['timestamp request (type 13)', toVip(13, 0, Buffer.alloc(12)), 'icmp_unsupported'],
    ['echo with IP options (record route)', echoReq({ ipOptions: Uint8Array.from([7, 7, 4, 0, 0, 0, 0, 1]) }), 'icmp_unsupported'],
    ['echo from 0.0.0.0', echoReq({ src: '0.0.0.0' }), 'malformed'],
    ['echo from a multicast source', echoReq({ src: '224.0.0.5' }), 'malformed'],
    ['echo from loopback', echoReq({ src: '127.0.0.1' }), 'malformed'],
    ['echo from a multicast Ethernet source', echoReq({ srcMac: '03:00:00:00:00:07' }), 'malformed'],
    ['echo in fragments (first)', echoReq({ mf: true }), 'ip_fragment'],
    ['echo to a non-VIP address', echoReq({ dst: '10.0.0.50' }), 'not_for_us'],
    ['echo to a VIP, Ethernet destination not ours', echoReq({ dstMac: '02:bb:00:00:00:01' }), 'not_for_us'],
  ];
  for (const [desc, frame, want] of cases) {
    const b = build('dsr');
    run(b, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.100', srcPort: 40000, dstPort: 80, flags: TCP_SYN }));
    const r = run(b, frame, 1);
    t.equal(r.reason, want, desc);
    t.same(r.out, frame, `${desc}: left as it was`);
  }
  // UDP (and anything else that is not TCP or ICMP) keeps its old reason
  const udp = Buffer.from(echoReq()); { const l3 = l3Of(udp); udp[l3 + 9] = IPPROTO_UDP; udp[l3 + 10] = 0; udp[l3 + 11] = 0; udp.writeUInt16BE(checksum(udp, l3, 20), l3 + 10); }
  t.equal(run(build('dsr'), udp).reason, 'not_tcp', 'UDP to a VIP');
  t.ok(parseIpv4Header(udp, l3Of(udp), 40));
});

t.test('an error for a removed backend, or one whose MAC is not known, is dropped like its TCP would be', async (t) => {
  const b = build('dsr');
  run(b, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.101', srcPort: 5, dstPort: 443, flags: TCP_SYN }));
  const err = fragNeeded({ dst: '10.0.0.101', quoted: segment('10.0.0.101', 443, CLIENT, 5, 0) });
  t.equal(parseEthernet(run(b, err, 1).out)!.dst, WEB2_MAC, 'web2 serves 10.0.0.101:443');
  const spec = configSpec(b.config, b.tables.mac);
  b.dataplane.publish(new Tables({ ...spec, backends: spec.backends.filter((x) => x.name !== 'web2'), services: spec.services.filter((s) => s.active !== 'web2') }, b.tables));
  t.equal(run(b, err, 2).reason, 'no_backend');
});

t.test('every frame is counted once: frames_in = frames_out + drops', async (t) => {
  const b = build('nat', 'icmp: { echo_rate: 1/s, echo_burst: 1 }');
  run(b, tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: CLIENT, dst: '10.0.0.101', srcPort: 40000, dstPort: 80, flags: TCP_SYN }));
  const frames = [echoReq(), echoReq(), fragNeeded({ dst: '10.0.0.101', quoted: segment('10.0.0.101', 80, CLIENT, 40000, 0) }),
    fragNeeded({ dst: '10.0.0.101', quoted: segment('10.0.0.101', 80, CLIENT, 1, 0) }), echoReq({ dst: '10.0.0.50' })];
  const verdicts = frames.map((f) => run(b, f, 5).verdict);
  t.same(verdicts.map((v) => v === VERDICT_TX), [true, false, true, false, false]);
  const c = b.state.counters;
  let drops = 0;
  for (let i = 0; i < Ctr.frames_in; i++) drops += c[i]!;
  t.equal(c[Ctr.frames_in], frames.length + 1);
  t.equal(c[Ctr.frames_out]! + drops, c[Ctr.frames_in]);
});

t.test('reload (POST /v1/reload): the icmp keys take effect without a restart', async (t) => {
  const h = await startHarness({ yaml: defaultYaml({ extra: 'icmp: { echo: false }' }) });
  t.teardown(() => h.close());
  const ping = (): string => {
    const f = Buffer.from(echoReq());
    return reasonName(h.built.dataplane.process(f, 0, f.length, h.now) === VERDICT_TX ? -1 : h.built.dataplane.lastDrop);
  };
  t.equal(ping(), 'icmp_echo_off', 'echo: false at start');
  h.writeConfig(defaultYaml({ extra: 'icmp: { echo: true, echo_rate: 10/s, echo_burst: 1 }' }));
  const r = await h.req('POST', '/v1/reload');
  t.equal(r.status, 200, `reload accepted: ${r.text}`);
  t.same((r.json as { changes: string[] }).changes, ['~ icmp echo off -> echo on, 10/s, burst 1'], 'the reload lists the change');
  t.same([ping(), ping()], ['tx', 'icmp_rate_limited'], 'echo on, with the new burst of 1');
});

// Packet path fixtures, one table per feature (Katran's tester: description, input frame,
// expected verdict, expected output). Frames are built from the wire parsed forms.
import t from 'tap';
import { arp, tcp, vlan, BCAST } from './helpers/frames';
import { build, reasonName, OUR_MAC, CLIENT_MAC, CLIENT2_MAC, WEB1_MAC, WEB2_MAC } from './helpers/dp';
import { VERDICT_TX, VERDICT_DROP } from '../src/dataplane/dataplane';
import { parseEthernet, emitEthernet, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_IPV4 } from '../src/wire/ethernet';
import { parseArp, ARP_OP_REPLY, ARP_OP_REQUEST } from '../src/wire/arp';
import { emitIpv4, IPPROTO_UDP } from '../src/wire/ipv4';
import { ipOf, tcpOf, tcpOk } from './helpers/inspect';
import { TCP_SYN, TCP_ACKF, TCP_FIN, TCP_RST, TCP_PSH, TCP_ECE, TCP_CWR, TCP_URGF } from '../src/wire/tcp';
import { Ctr, Drop } from '../src/dataplane/counters';
import { BackendState, Tables } from '../src/tables/services';
import { configSpec } from '../src/control/model';

const S = 1000; // ms

function run(b: ReturnType<typeof build>, frame: Buffer, now = 0): { verdict: number; reason: string; out: Buffer } {
  const buf = Buffer.from(frame);
  const verdict = b.dataplane.process(buf, 0, buf.length, now);
  return { verdict, reason: reasonName(b.dataplane.lastDrop), out: buf };
}


const C = { srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.0.7' };
const syn = (dst: string, dport: number, sport = 40000, extra: Partial<Parameters<typeof tcp>[0]> = {}) =>
  tcp({ ...C, dst, srcPort: sport, dstPort: dport, flags: TCP_SYN, seq: 1000, options: { mss: 1460, sackPermitted: true, tsval: 1, wscale: 7 }, ...extra });
const seg = (dst: string, dport: number, flags: number, sport = 40000, payload = '') =>
  tcp({ ...C, dst, srcPort: sport, dstPort: dport, flags, seq: 1001, ack: 5001, payload });

t.test('ARP responder: who answers what (MetalLB-style reason table)', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['request for a VIP, broadcast', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), 'tx'],
    ['request for a VIP without a service', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.102' }), 'tx'],
    ['request for a VIP, unicast to our MAC (cache refresh)', arp({ src: CLIENT_MAC, dst: OUR_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.101' }), 'tx'],
    ['RFC 5227 probe (sender 0.0.0.0) for a VIP: defended', arp({ src: CLIENT_MAC, senderIp: '0.0.0.0', targetIp: '10.0.0.100' }), 'tx'],
    ['request for another address', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.1' }), 'arp_not_for_vip'],
    ['request for a VIP unicast to another MAC', arp({ src: CLIENT_MAC, dst: '02:bb:00:00:00:01', senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), 'not_for_us'],
    ['a reply (even for a VIP target)', arp({ src: CLIENT_MAC, dst: OUR_MAC, oper: ARP_OP_REPLY, senderIp: '10.0.0.7', targetIp: '10.0.0.100', targetMac: OUR_MAC }), 'arp_reply'],
    ['our own request seen again', arp({ src: OUR_MAC, senderIp: '10.0.0.100', targetIp: '10.0.0.100' }), 'own_frame'],
    ['gratuitous ARP from another host claiming a VIP', arp({ src: CLIENT2_MAC, senderIp: '10.0.0.100', targetIp: '10.0.0.100' }), 'arp_conflict'],
    ['request from another host whose sender IP is a VIP', arp({ src: CLIENT2_MAC, senderIp: '10.0.0.101', targetIp: '10.0.0.100' }), 'arp_conflict'],
    ['reply from another host claiming a VIP', arp({ src: CLIENT2_MAC, oper: ARP_OP_REPLY, senderIp: '10.0.0.101', targetIp: '10.0.0.7' }), 'arp_conflict'],
    ['opcode 3 (RARP request)', arp({ src: CLIENT_MAC, oper: 3, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), 'arp_unsupported'],
    ['sender hardware address is multicast', arp({ src: CLIENT_MAC, senderMac: '03:00:00:00:00:01', senderIp: '10.0.0.7', targetIp: '10.0.0.100' }), 'malformed'],
    ['cut to 22 bytes (arp-scan pkt-too-short)', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }).subarray(0, 22), 'truncated'],
    ['three VLAN tags', arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100', vlans: [vlan(1, ETHERTYPE_QINQ), vlan(2), vlan(3)] }), 'too_many_vlan_tags'],
  ];
  for (const [desc, frame, want] of cases) {
    const b = build('dsr');
    t.equal(run(b, frame).reason, want, desc);
  }
});

t.test('ARP reply bytes: to the requester, from our MAC, same length', async (t) => {
  const b = build('dsr');
  const req = arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100', pad: true });
  const r = run(b, req);
  t.equal(r.verdict, VERDICT_TX);
  t.equal(r.out.length, 60, 'padding kept');
  const e = parseEthernet(r.out)!;
  t.same({ dst: e.dst, src: e.src, vlans: e.vlans }, { dst: CLIENT_MAC, src: OUR_MAC, vlans: [] });
  t.same(parseArp(r.out, e.l3, r.out.length - e.l3), {
    htype: 1, ptype: 0x0800, hlen: 6, plen: 4, oper: ARP_OP_REPLY,
    senderMac: OUR_MAC, senderIp: '10.0.0.100', targetMac: CLIENT_MAC, targetIp: '10.0.0.7',
  });
  t.equal(b.state.counters[Ctr.arp_replies], 1);
  t.equal(b.state.counters[Ctr.neigh_learned], 1, 'the requester was learned');
});

t.test('ARP on VLANs: the reply carries the same tags (802.1Q and QinQ)', async (t) => {
  for (const tags of [[vlan(42)], [vlan(200, ETHERTYPE_QINQ), vlan(2001, ETHERTYPE_VLAN)]]) {
    const b = build('dsr');
    const r = run(b, arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.101', vlans: tags }));
    t.equal(r.verdict, VERDICT_TX);
    const e = parseEthernet(r.out)!;
    t.same(e.vlans, tags, `tags ${tags.map((x) => x.vid).join('/')}`);
    t.equal(parseArp(r.out, e.l3, r.out.length - e.l3)!.oper, ARP_OP_REPLY);
  }
});

t.test('SYN steering: IP mode and port mode', async (t) => {
  const cases: Array<[string, Buffer, string, string | null]> = [
    ['IP mode: any port of 10.0.0.100 -> web1', syn('10.0.0.100', 22), 'tx', WEB1_MAC],
    ['IP mode: port 80 too', syn('10.0.0.100', 80), 'tx', WEB1_MAC],
    ['port mode: 10.0.0.101:80 -> active web1', syn('10.0.0.101', 80), 'tx', WEB1_MAC],
    ['port mode: 10.0.0.101:443 -> web2', syn('10.0.0.101', 443), 'tx', WEB2_MAC],
    ['port mode: 10.0.0.101:22 has no service', syn('10.0.0.101', 22), 'no_service', null],
    ['ECN-setup SYN (SYN|ECE|CWR) is a SYN', tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_SYN | TCP_ECE | TCP_CWR }), 'tx', WEB1_MAC],
    ['SYN-ACK to a VIP', tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_SYN | TCP_ACKF }), 'bad_tcp_flags', null],
    ['SYN|FIN', tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_SYN | TCP_FIN }), 'bad_tcp_flags', null],
    ['all eight flags set (tcpdump test)', tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: 0xff }), 'bad_tcp_flags', null],
    ['backend web3 has no MAC and none was learned', syn('10.0.0.102', 80), 'backend_unresolved', null],
    ['SYN to a non-VIP address', syn('10.0.0.50', 80), 'not_for_us', null],
    ['SYN to a VIP, Ethernet destination not ours', tcp({ ...C, dstMac: '02:bb:00:00:00:01', dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_SYN }), 'not_for_us', null],
    ['first fragment to a VIP', tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_SYN, mf: true }), 'ip_fragment', null],
    ['SYN with IP options is fine', syn('10.0.0.100', 80, 40000, { ipOptions: Uint8Array.from([1, 1, 1, 0]) }), 'tx', WEB1_MAC],
    ['SYN on VLAN 42', syn('10.0.0.100', 80, 40000, { vlans: [vlan(42)] }), 'tx', WEB1_MAC],
  ];
  for (const [desc, frame, want, mac] of cases) {
    const b = build('dsr');
    const r = run(b, frame);
    t.equal(r.reason, want, desc);
    if (mac) {
      const e = parseEthernet(r.out)!;
      t.same([e.dst, e.src], [mac, OUR_MAC], `${desc}: MACs rewritten`);
      t.same(r.out.subarray(12), frame.subarray(12), `${desc}: dsr leaves everything after the MACs alone`);
    } else {
      t.same(r.out, frame, `${desc}: a dropped frame is left as it was`);
    }
  }
});

t.test('port mode: the first usable standby takes new flows when the active is down', async (t) => {
  const b = build('dsr');
  const spec = configSpec(b.config, b.tables.mac);
  const down = new Tables({ ...spec, backends: spec.backends.map((x) => x.name === 'web1' ? { ...x, state: 'down' as const } : x) }, b.tables);
  t.equal(run(b, syn('10.0.0.101', 80, 1)).reason, 'tx');
  b.dataplane.publish(down);
  const r = run(b, syn('10.0.0.101', 80, 2));
  t.equal(parseEthernet(r.out)!.dst, WEB2_MAC, 'new flow goes to standby web2');
  const old = run(b, seg('10.0.0.101', 80, TCP_ACKF, 1));
  t.equal(parseEthernet(old.out)!.dst, WEB1_MAC, 'the existing flow stays on web1 (down means no NEW flows)');
  t.equal(run(b, syn('10.0.0.100', 80, 3)).reason, 'no_backend', 'IP mode service with its only backend down');
  const gone = new Tables({ ...spec, backends: spec.backends.filter((x) => x.name !== 'web1') , services: spec.services.filter((s) => s.active !== 'web1') }, b.tables);
  b.dataplane.publish(gone);
  t.equal(run(b, seg('10.0.0.101', 80, TCP_ACKF, 1)).reason, 'no_backend', 'a removed backend takes no more packets');
  t.equal(gone.backendSlot('web2'), b.tables.backendSlot('web2'), 'backend slots are stable across rebuilds');
  t.equal(BackendState.absent, gone.bState[b.tables.backendSlot('web1')]);
});

t.test('flows: every later packet goes to the same backend; lifecycle and timeouts', async (t) => {
  const b = build('dsr', 'flows: { capacity: 4, half_open_timeout: 5s, established_timeout: 60s, closing_timeout: 2s }');
  const dp = b.dataplane, c = b.state.counters;
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF), 0).reason, 'unknown_flow', 'ACK before any SYN');
  t.equal(run(b, syn('10.0.0.100', 80), 0).reason, 'tx');
  t.equal(c[Ctr.flows_created], 1);
  t.equal(run(b, syn('10.0.0.100', 80), 1 * S).reason, 'tx', 'retransmitted SYN');
  t.equal(c[Ctr.syn_retransmits], 1);
  t.equal(c[Ctr.flows_created], 1, 'no second flow for a retransmitted SYN');
  const est = run(b, seg('10.0.0.100', 80, TCP_ACKF | TCP_PSH, 40000, 'GET / HTTP/1.1\r\n\r\n'), 2 * S);
  t.equal(parseEthernet(est.out)!.dst, WEB1_MAC);
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF), 50 * S).reason, 'tx', 'established: 48 s idle is within 60 s');
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF), 111 * S).reason, 'unknown_flow', 'established: 61 s idle expired');
  t.equal(c[Ctr.flows_expired], 1);
  t.equal(c[Ctr.flows_active], 0);

  // half-open timeout
  run(b, syn('10.0.0.100', 80, 1), 200 * S);
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF, 1), 206 * S).reason, 'unknown_flow', 'half-open flow expired after 5 s');
  // closing timeout, then port reuse
  run(b, syn('10.0.0.100', 80, 2), 300 * S);
  run(b, seg('10.0.0.100', 80, TCP_ACKF, 2), 300 * S);
  t.equal(run(b, seg('10.0.0.100', 80, TCP_FIN | TCP_ACKF, 2), 301 * S).reason, 'tx');
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF, 2), 302 * S).reason, 'tx', 'closing: within 2 s');
  t.equal(run(b, syn('10.0.0.100', 80, 2), 303 * S).reason, 'tx', 'new SYN on a closing 5-tuple is a new flow');
  t.equal(c[Ctr.flows_reused], 1);
  run(b, seg('10.0.0.100', 80, TCP_RST, 2), 304 * S);
  t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF, 2), 307 * S).reason, 'unknown_flow', 'RST then 3 s: closed');
  t.equal(dp.sweep(10_000 * S, 1 << 20), 0, 'nothing left for the sweep');
});

t.test('flow table full: defined, counted, existing flows untouched', async (t) => {
  const b = build('dsr', 'flows: { capacity: 4 }');
  for (let p = 1; p <= 4; p++) t.equal(run(b, syn('10.0.0.100', 80, p)).reason, 'tx');
  t.equal(run(b, syn('10.0.0.100', 80, 5)).reason, 'flow_table_full');
  t.equal(b.state.counters[Drop.flow_table_full], 1);
  for (let p = 1; p <= 4; p++) t.equal(run(b, seg('10.0.0.100', 80, TCP_ACKF, p)).reason, 'tx', `flow ${p} still forwarded`);
  t.equal(b.dataplane.sweep(16 * 60 * S, 1 << 20), 4, 'the sweep expires idle flows');
  t.equal(run(b, syn('10.0.0.100', 80, 5), 16 * 60 * S).reason, 'tx', 'room again after expiry');
});

t.test('backend MAC learned from ARP', async (t) => {
  const b = build('dsr');
  t.equal(run(b, syn('10.0.0.102', 80)).reason, 'backend_unresolved');
  t.equal(b.state.counters[Ctr.flows_created], 0, 'no flow for an unresolved backend');
  run(b, arp({ src: '02:00:00:00:01:23', dst: OUR_MAC, oper: ARP_OP_REPLY, senderIp: '10.0.1.23', targetIp: '10.0.0.100', targetMac: OUR_MAC }));
  const r = run(b, syn('10.0.0.102', 80), 1);
  t.equal(r.reason, 'tx');
  t.equal(parseEthernet(r.out)!.dst, '02:00:00:00:01:23');
  t.equal(run(b, syn('10.0.0.102', 80, 9), 301 * S).reason, 'backend_unresolved', 'the learned entry ages out (ttl 300 s)');
});

t.test('nat: rewrite to the backend and back, checksums verify, TTL decremented', async (t) => {
  const b = build('nat');
  const s = syn('10.0.0.101', 80, 40000, { ttl: 64, payload: '' });
  const r = run(b, s, 0);
  t.equal(r.reason, 'tx');
  const ip = ipOf(r.out);
  t.same([ip.src, ip.dst, ip.ttl, ip.checksumOk], ['10.0.0.7', '10.0.1.21', 63, true]);
  t.ok(tcpOk(r.out), 'TCP checksum verifies after the incremental update');
  t.same(tcpOf(r.out).options, tcpOf(s).options, 'options untouched');
  t.same(parseEthernet(r.out)!.dst, WEB1_MAC);

  // the backend answers the client through vipgate (its gateway)
  const synack = tcp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '10.0.0.7', srcPort: 80, dstPort: 40000, flags: TCP_SYN | TCP_ACKF, seq: 5000, ack: 1001, options: { mss: 1400 } });
  const back = run(b, synack, 1);
  t.equal(back.reason, 'tx');
  const bip = ipOf(back.out);
  t.same([bip.src, bip.dst, bip.ttl, bip.checksumOk], ['10.0.0.101', '10.0.0.7', 63, true]);
  t.ok(tcpOk(back.out), 'reply TCP checksum verifies');
  const be = parseEthernet(back.out)!;
  t.same([be.dst, be.src], [CLIENT_MAC, OUR_MAC], 'reply goes to the MAC the client came from');

  const data = run(b, seg('10.0.0.101', 80, TCP_ACKF | TCP_PSH, 40000, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 2);
  t.ok(tcpOk(data.out) && ipOf(data.out).dst === '10.0.1.21', 'data segment rewritten with a valid checksum');
  t.equal(b.state.counters[Ctr.forwarded_to_client], 1);

  t.equal(run(b, tcp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '10.0.0.7', srcPort: 80, dstPort: 40001, flags: TCP_ACKF }), 3).reason, 'not_for_us', 'backend traffic that is not a reply of a flow');
  t.equal(run(b, syn('10.0.0.101', 80, 40002, { ttl: 1 }), 3).reason, 'ttl_exceeded');
  t.equal(b.state.counters[Ctr.flows_created], 1, 'no flow for the TTL-expired SYN');
});

t.test('nat: the same client address and port to two VIPs on one backend is a conflict', async (t) => {
  const b = build('nat');
  t.equal(run(b, syn('10.0.0.100', 80, 5555)).reason, 'tx', 'VIP .100 -> web1');
  t.equal(run(b, syn('10.0.0.101', 80, 5555)).reason, 'nat_conflict', 'VIP .101:80 -> web1 again: web1 could not tell them apart');
  t.equal(run(b, syn('10.0.0.101', 443, 5555)).reason, 'tx', 'VIP .101:443 -> web2 is fine');
});

t.test('IPv4 checks on the way in', async (t) => {
  const good = syn('10.0.0.100', 80);
  const badCsum = Buffer.from(good); badCsum[14 + 10] ^= 0xff;
  const v6 = Buffer.from(good); v6[12] = 0x86; v6[13] = 0xdd;
  const badVer = Buffer.from(good); badVer[14] = 0x65;
  const badIhl = Buffer.from(good); badIhl[14] = 0x44;
  const short = Buffer.from(good.subarray(0, 14 + 19));
  const cases: Array<[string, Buffer, string]> = [
    ['bad IP header checksum', badCsum, 'bad_ip_checksum'],
    ['IPv6 ethertype', v6, 'unsupported_ethertype'],
    ['IP version 6 in an IPv4 ethertype', badVer, 'malformed'],
    ['IHL 4 (16 bytes)', badIhl, 'malformed'],
    ['19 bytes of IP', short, 'truncated'],
    ['13-byte frame', good.subarray(0, 13), 'truncated'],
  ];
  for (const [desc, f, want] of cases) t.equal(run(build('dsr'), f).reason, want, desc);
  // UDP to a VIP: a valid IPv4 header with protocol 17 (ICMP has its own path: dataplane-icmp.test.ts)
  const udp = Buffer.alloc(60);
  const l3 = emitEthernet({ dst: OUR_MAC, src: CLIENT_MAC, vlans: [], etherType: ETHERTYPE_IPV4 }, udp, 0);
  emitIpv4({ totalLength: 28, protocol: IPPROTO_UDP, src: '10.0.0.7', dst: '10.0.0.100' }, udp, l3);
  t.equal(run(build('dsr'), udp).reason, 'not_tcp', 'UDP to a VIP');
  const u = tcp({ ...C, dst: '10.0.0.100', srcPort: 1, dstPort: 80, flags: TCP_URGF });
  t.equal(run(build('dsr'), u).reason, 'unknown_flow', 'URG-only segment without a flow');
});

t.test('every frame is counted once: frames_in = frames_out + drops', async (t) => {
  const b = build('nat');
  const frames = [syn('10.0.0.100', 80), seg('10.0.0.100', 80, TCP_ACKF), arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100' }),
    arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '1.2.3.4' }), seg('10.0.0.9', 80, TCP_ACKF), Buffer.alloc(3), syn('10.0.0.101', 22)];
  for (const f of frames) run(b, f);
  const c = b.state.counters;
  let drops = 0;
  for (let i = 0; i < Ctr.frames_in; i++) drops += c[i]!;
  t.equal(c[Ctr.frames_in], frames.length);
  t.equal(c[Ctr.frames_out]! + drops, frames.length);
  t.equal(VERDICT_DROP, 0);
  void BCAST; void ARP_OP_REQUEST;
});

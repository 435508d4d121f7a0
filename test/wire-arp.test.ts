// ARP (RFC 826, Ethernet/IPv4 only) over golden bytes copied from the shared captures
// (/work/shared/pcaps, see MANIFEST.md): take apart, build into garbage, parse, round trip,
// plus the in-place request -> reply rewrite checked against the real reply on the wire.

import t from 'tap';
import {
  ARP_HTYPE, ARP_PTYPE, ARP_HLEN, ARP_PLEN, ARP_OPER, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA, ARP_LEN,
  ARP_HTYPE_ETHERNET, ARP_OP_REQUEST, ARP_OP_REPLY,
  arpIsEthIpv4, arpOper, arpSpa, arpTpa, arpMakeReplyInPlace, parseArp, arpIsGratuitous, emitArp, ArpRepr,
} from '../src/wire/arp';
import { ETHERTYPE_IPV4, parseEthernet } from '../src/wire/ethernet';
import { macIsZero, macIsBroadcast, u16 } from '../src/wire/bytes';
import { formatMac, parseIpv4, parseMac } from '../src/wire/addr';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
function garbage(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

// cs-ppa2e-arp_resolution.pcap #1 (42 bytes):
// 00:16:ce:6e:8b:24 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42:
//   Request who-has 192.168.0.1 tell 192.168.0.114, length 28
const REQUEST = hex(`
  ffff ffff ffff 0016 ce6e 8b24 0806 0001
  0800 0604 0001 0016 ce6e 8b24 c0a8 0072
  0000 0000 0000 c0a8 0001`);

// cs-ppa2e-arp_resolution.pcap #2 (46 bytes; the 4 bytes after the ARP packet are trailer):
// 00:13:46:0b:22:ba > 00:16:ce:6e:8b:24, ethertype ARP (0x0806), length 46:
//   Reply 192.168.0.1 is-at 00:13:46:0b:22:ba, length 32
const REPLY = hex(`
  0016 ce6e 8b24 0013 460b 22ba 0806 0001
  0800 0604 0002 0013 460b 22ba c0a8 0001
  0016 ce6e 8b24 c0a8 0072 c0a8 0072`);

// cs-ppa2e-arp_gratuitous.pcap #1 (60 bytes, padded):
// 00:03:47:b7:f2:f5 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60:
//   Request who-has 24.6.125.19 tell 24.6.125.19, length 46
const GRATUITOUS = hex(`
  ffff ffff ffff 0003 47b7 f2f5 0806 0001
  0800 0604 0001 0003 47b7 f2f5 1806 7d13
  0000 0000 0000 1806 7d13 0000 0000 0000
  0000 0000 0000 0000 0000 0000`);

// arpscan-pkt-vlan-response.pcap #1 (60 bytes): 802.1Q vlan 4095, ARP at offset 18
// 08:00:2b:06:07:08 > 00:01:02:03:04:05, ethertype 802.1Q (0x8100), length 60: vlan 4095, p 0,
//   ethertype ARP (0x0806), Reply 127.0.0.1 is-at 08:00:2b:06:07:08, length 42
const VLAN_REPLY = hex(`
  0001 0203 0405 0800 2b06 0708 8100 0fff
  0806 0001 0800 0604 0002 0800 2b06 0708
  7f00 0001 0001 0203 0405 7f00 0001 0000
  0000 0000 0000 0000 0000 0000`);

// tcpdump-802.1ad_QinQ.pcap #1 and #2 (64 bytes each): S-tag 200, C-tag 2001, ARP at offset 22
// 00:20:d2:5a:fb:3f > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-QinQ (0x88a8), length 64: vlan 200, p 0,
//   ethertype 802.1Q (0x8100), vlan 2001, p 0, ethertype ARP (0x0806), Request who-has 172.21.79.100 tell 172.21.79.97
const QINQ_REQUEST = hex(`
  ffff ffff ffff 0020 d25a fb3f 88a8 00c8
  8100 07d1 0806 0001 0800 0604 0001 0020
  d25a fb3f ac15 4f61 0000 0000 0000 ac15
  4f64 0000 0000 0000 0000 0000 0000 0000`);
// 00:80:ea:81:88:63 > 00:20:d2:5a:fb:3f, ethertype 802.1Q-QinQ (0x88a8), length 64: vlan 200, p 0,
//   ethertype 802.1Q (0x8100), vlan 2001, p 0, ethertype ARP (0x0806), Reply 172.21.79.100 is-at 00:80:ea:81:88:63
const QINQ_REPLY = hex(`
  0020 d25a fb3f 0080 ea81 8863 88a8 00c8
  8100 07d1 0806 0001 0800 0604 0002 0080
  ea81 8863 ac15 4f64 0020 d25a fb3f ac15
  4f61 0000 0000 0000 0000 0000 0000 0000`);

// arpscan-pkt-too-short.pcap #1 (22 bytes, caplen == len): Ethernet + the first 8 ARP bytes only
// 00:50:56:e4:9a:83 > 00:0c:29:d3:97:e8, ethertype ARP (0x0806), length 22:  [|arp]
const TOO_SHORT = hex(`
  000c 29d3 97e8 0050 56e4 9a83 0806 0001
  0800 0604 0002`);

interface Golden { name: string; frame: Buffer; l3: number; repr: ArpRepr; gratuitous: boolean; }
const ETH_IPV4 = { htype: 1, ptype: 0x0800, hlen: 6, plen: 4 };

const GOLDEN: Golden[] = [
  {
    name: 'request (arp_resolution #1)', frame: REQUEST, l3: 14, gratuitous: false,
    repr: { ...ETH_IPV4, oper: 1, senderMac: '00:16:ce:6e:8b:24', senderIp: '192.168.0.114', targetMac: '00:00:00:00:00:00', targetIp: '192.168.0.1' },
  },
  {
    name: 'reply (arp_resolution #2)', frame: REPLY, l3: 14, gratuitous: false,
    repr: { ...ETH_IPV4, oper: 2, senderMac: '00:13:46:0b:22:ba', senderIp: '192.168.0.1', targetMac: '00:16:ce:6e:8b:24', targetIp: '192.168.0.114' },
  },
  {
    name: 'gratuitous request (arp_gratuitous #1)', frame: GRATUITOUS, l3: 14, gratuitous: true,
    repr: { ...ETH_IPV4, oper: 1, senderMac: '00:03:47:b7:f2:f5', senderIp: '24.6.125.19', targetMac: '00:00:00:00:00:00', targetIp: '24.6.125.19' },
  },
  {
    // sender IP == target IP: tshark counts this as a gratuitous reply too
    name: '802.1Q reply (arpscan-pkt-vlan-response #1)', frame: VLAN_REPLY, l3: 18, gratuitous: true,
    repr: { ...ETH_IPV4, oper: 2, senderMac: '08:00:2b:06:07:08', senderIp: '127.0.0.1', targetMac: '00:01:02:03:04:05', targetIp: '127.0.0.1' },
  },
  {
    name: 'QinQ request (802.1ad_QinQ #1)', frame: QINQ_REQUEST, l3: 22, gratuitous: false,
    repr: { ...ETH_IPV4, oper: 1, senderMac: '00:20:d2:5a:fb:3f', senderIp: '172.21.79.97', targetMac: '00:00:00:00:00:00', targetIp: '172.21.79.100' },
  },
  {
    name: 'QinQ reply (802.1ad_QinQ #2)', frame: QINQ_REPLY, l3: 22, gratuitous: false,
    repr: { ...ETH_IPV4, oper: 2, senderMac: '00:80:ea:81:88:63', senderIp: '172.21.79.100', targetMac: '00:20:d2:5a:fb:3f', targetIp: '172.21.79.97' },
  },
];

t.test('take apart with the accessors', async (t) => {
  t.strictSame([ARP_HTYPE, ARP_PTYPE, ARP_HLEN, ARP_PLEN, ARP_OPER, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA, ARP_LEN],
    [0, 2, 4, 5, 6, 8, 14, 18, 24, 28]);
  t.test('request', async (t) => {
    const b = REQUEST, l3 = 14;
    t.ok(arpIsEthIpv4(b, l3));
    t.equal(u16(b, l3 + ARP_HTYPE), ARP_HTYPE_ETHERNET);
    t.equal(u16(b, l3 + ARP_PTYPE), ETHERTYPE_IPV4);
    t.equal(arpOper(b, l3), ARP_OP_REQUEST);
    t.equal(arpSpa(b, l3), 0xc0a80072, '192.168.0.114 as a u32');
    t.equal(arpTpa(b, l3), 0xc0a80001, '192.168.0.1 as a u32');
    t.equal(formatMac(b, l3 + ARP_SHA), '00:16:ce:6e:8b:24');
    t.ok(macIsZero(b, l3 + ARP_THA), 'unknown target hardware address is zero');
    t.ok(macIsBroadcast(b, 0));
  });
  t.test('reply', async (t) => {
    const b = REPLY, l3 = 14;
    t.ok(arpIsEthIpv4(b, l3));
    t.equal(arpOper(b, l3), ARP_OP_REPLY);
    t.equal(arpSpa(b, l3), 0xc0a80001);
    t.equal(arpTpa(b, l3), 0xc0a80072);
    t.notOk(macIsZero(b, l3 + ARP_THA));
  });
  t.test('gratuitous', async (t) => {
    const b = GRATUITOUS, l3 = 14;
    t.equal(arpOper(b, l3), ARP_OP_REQUEST);
    t.equal(arpSpa(b, l3), arpTpa(b, l3), 'sender IP == target IP');
    t.equal(arpSpa(b, l3), parseIpv4('24.6.125.19'));
  });
  t.test('behind tags, l3 from parseEthernet', async (t) => {
    t.equal(parseEthernet(VLAN_REPLY)!.l3, 18);
    t.ok(arpIsEthIpv4(VLAN_REPLY, 18));
    t.equal(arpSpa(VLAN_REPLY, 18), 0x7f000001);
    t.equal(parseEthernet(QINQ_REQUEST)!.l3, 22);
    t.equal(arpTpa(QINQ_REQUEST, 22), parseIpv4('172.21.79.100'));
    t.equal(arpOper(QINQ_REPLY, 22), ARP_OP_REPLY);
  });
});

t.test('parse gives the repr', async (t) => {
  for (const g of GOLDEN) {
    const r = parseArp(g.frame, g.l3, g.frame.length - g.l3);
    t.strictSame(r, g.repr, g.name);
    t.equal(arpIsGratuitous(r!), g.gratuitous, `${g.name}: gratuitous`);
  }
});

t.test('emit into garbage gives the golden ARP bytes and writes nothing else', async (t) => {
  for (const g of GOLDEN) {
    const buf = garbage(g.l3 + ARP_LEN + 6);
    const n = emitArp(g.repr, buf, g.l3);
    t.equal(n, ARP_LEN, g.name);
    t.strictSame(buf.subarray(g.l3, g.l3 + n), g.frame.subarray(g.l3, g.l3 + ARP_LEN), g.name);
    t.ok(buf.subarray(0, g.l3).every((x) => x === 0xa5), `${g.name}: nothing before l3`);
    t.ok(buf.subarray(g.l3 + n).every((x) => x === 0xa5), `${g.name}: nothing after the 28 bytes`);
  }
});

t.test('emit(parse(x)) round trip', async (t) => {
  for (const g of GOLDEN) {
    const buf = Buffer.from(g.frame);
    const r = parseArp(buf, g.l3, buf.length - g.l3)!;
    buf.fill(0xa5, g.l3, g.l3 + ARP_LEN);
    emitArp(r, buf, g.l3);
    t.strictSame(buf, g.frame, g.name);
  }
});

t.test('request turned into a reply in place equals the real reply', async (t) => {
  // arp_resolution: 192.168.0.1 (00:13:46:0b:22:ba) answered 192.168.0.114
  const a = Buffer.from(REQUEST);
  arpMakeReplyInPlace(a, 14, parseMac('00:13:46:0b:22:ba')!, parseIpv4('192.168.0.1')!);
  t.strictSame(a.subarray(14, 14 + ARP_LEN), REPLY.subarray(14, 14 + ARP_LEN), 'untagged');
  t.ok(a.subarray(0, 14).equals(REQUEST.subarray(0, 14)), 'the Ethernet header is not the ARP rewrite\'s business');

  // QinQ: 172.21.79.100 (00:80:ea:81:88:63) answered 172.21.79.97; ARP at 22, padding untouched
  const q = Buffer.from(QINQ_REQUEST);
  arpMakeReplyInPlace(q, 22, parseMac('00:80:ea:81:88:63')!, parseIpv4('172.21.79.100')!);
  t.strictSame(q.subarray(22), QINQ_REPLY.subarray(22), 'QinQ, ARP and trailing padding');
});

t.test('refused forms', async (t) => {
  // arpscan-pkt-too-short: 8 bytes of ARP. tshark still shows an opcode (reply); we refuse it.
  t.equal(parseArp(TOO_SHORT, 14, TOO_SHORT.length - 14), null, '22-byte frame with 8 bytes of ARP');
  for (let n = 0; n < ARP_LEN; n++) t.equal(parseArp(REQUEST, 14, n), null, `${n} bytes`);
  t.ok(parseArp(REQUEST, 14, ARP_LEN), 'exactly 28 bytes');

  const mutate = (off: number, v: number): Buffer => { const b = Buffer.from(REQUEST); b[14 + off] = v; return b; };
  for (const [what, b] of [
    ['htype 6 (IEEE 802)', mutate(1, 6)],
    ['ptype 0x86dd', (() => { const b = Buffer.from(REQUEST); b[16] = 0x86; b[17] = 0xdd; return b; })()],
    ['hlen 8', mutate(4, 8)],
    ['plen 16', mutate(5, 16)],
  ] as Array<[string, Buffer]>) {
    t.notOk(arpIsEthIpv4(b, 14), what);
    t.equal(parseArp(b, 14, 28), null, what);
  }
  // an unknown opcode is not ours to judge: it parses, and the caller decides
  const op3 = mutate(7, 3);
  t.equal(parseArp(op3, 14, 28)?.oper, 3);
});

t.test('emit refuses bad addresses', async (t) => {
  const r = GOLDEN[0]!.repr;
  t.throws(() => emitArp({ ...r, senderIp: '300.1.1.1' }, garbage(28), 0));
  t.throws(() => emitArp({ ...r, targetMac: '00:00:00:00:00' }, garbage(28), 0));
});

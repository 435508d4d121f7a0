// Ethernet II and 802.1Q / 802.1ad tags over golden bytes copied from the shared captures
// (/work/shared/pcaps, see MANIFEST.md). Four tests per frame, smoltcp style:
// take apart with the accessors, build with emit into a buffer of garbage (0xa5) so an
// unwritten field shows, parse to the repr, and emit(parse(x)) round trip.

import t from 'tap';
import {
  ETH_DST, ETH_SRC, ETH_TYPE, ETH_HEADER_LEN, VLAN_TAG_LEN, MAX_VLAN_TAGS,
  ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD, ETHERTYPE_IPV6,
  ethType, isVlanTpid, parseEthernet, emitEthernet, EthernetRepr,
} from '../src/wire/ethernet';
import { u16, macIsBroadcast, macIsGroup, macEq } from '../src/wire/bytes';
import { formatMac } from '../src/wire/addr';

/** Hex from a tcpdump -xx dump (spaces and newlines ignored) into a Buffer. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function garbage(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

// arpscan-pkt-vlan-response.pcap, frame 1 (60 bytes):
// 08:00:2b:06:07:08 > 00:01:02:03:04:05, ethertype 802.1Q (0x8100), length 60: vlan 4095, p 0,
//   ethertype ARP (0x0806), Reply 127.0.0.1 is-at 08:00:2b:06:07:08, length 42
const VLAN_ARP = hex(`
  0001 0203 0405 0800 2b06 0708 8100 0fff
  0806 0001 0800 0604 0002 0800 2b06 0708
  7f00 0001 0001 0203 0405 7f00 0001 0000
  0000 0000 0000 0000 0000 0000`);

// packetnet-802.1q_vlan_ipv4_tcp.pcap, frame 1, first 64 of 1165 bytes:
// 00:e0:b1:c8:ee:51 > 00:1b:21:c6:42:6e, ethertype 802.1Q (0x8100), length 1165: vlan 102, p 0,
//   ethertype IPv4 (0x0800), 192.168.3.24.3277 > 74.125.47.136.80: Flags [P.], length 1107: HTTP
const VLAN_IPV4 = hex(`
  001b 21c6 426e 00e0 b1c8 ee51 8100 0066
  0800 4500 047b 46b8 4000 7f06 72ff c0a8
  0318 4a7d 2f88 0ccd 0050 9d94 4ca2 b3ed
  8ca1 5018 fd9d 060d 0000 4745 5420 2f67`);

// tcpdump-802.1ad_QinQ.pcap, frame 1 (64 bytes):
// 00:20:d2:5a:fb:3f > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-QinQ (0x88a8), length 64: vlan 200, p 0,
//   ethertype 802.1Q (0x8100), vlan 2001, p 0, ethertype ARP (0x0806),
//   Request who-has 172.21.79.100 tell 172.21.79.97, length 42
const QINQ_ARP = hex(`
  ffff ffff ffff 0020 d25a fb3f 88a8 00c8
  8100 07d1 0806 0001 0800 0604 0001 0020
  d25a fb3f ac15 4f61 0000 0000 0000 ac15
  4f64 0000 0000 0000 0000 0000 0000 0000`);

// cs-ppa2e-arp_resolution.pcap, frame 1 (42 bytes, no padding):
// 00:16:ce:6e:8b:24 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42:
//   Request who-has 192.168.0.1 tell 192.168.0.114, length 28
const PLAIN_ARP = hex(`
  ffff ffff ffff 0016 ce6e 8b24 0806 0001
  0800 0604 0001 0016 ce6e 8b24 c0a8 0072
  0000 0000 0000 c0a8 0001`);

interface Golden { name: string; frame: Buffer; repr: EthernetRepr; }

const GOLDEN: Golden[] = [
  {
    name: 'untagged ARP (cs-ppa2e-arp_resolution.pcap #1)', frame: PLAIN_ARP,
    repr: { dst: 'ff:ff:ff:ff:ff:ff', src: '00:16:ce:6e:8b:24', vlans: [], etherType: ETHERTYPE_ARP, l3: 14 },
  },
  {
    name: '802.1Q vid 4095 ARP (arpscan-pkt-vlan-response.pcap #1)', frame: VLAN_ARP,
    repr: {
      dst: '00:01:02:03:04:05', src: '08:00:2b:06:07:08',
      vlans: [{ tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, vid: 4095 }], etherType: ETHERTYPE_ARP, l3: 18,
    },
  },
  {
    name: '802.1Q vid 102 IPv4 (packetnet-802.1q_vlan_ipv4_tcp.pcap #1)', frame: VLAN_IPV4,
    repr: {
      dst: '00:1b:21:c6:42:6e', src: '00:e0:b1:c8:ee:51',
      vlans: [{ tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, vid: 102 }], etherType: ETHERTYPE_IPV4, l3: 18,
    },
  },
  {
    name: '802.1ad S-tag 200 + 802.1Q C-tag 2001 ARP (tcpdump-802.1ad_QinQ.pcap #1)', frame: QINQ_ARP,
    repr: {
      dst: 'ff:ff:ff:ff:ff:ff', src: '00:20:d2:5a:fb:3f',
      vlans: [
        { tpid: ETHERTYPE_QINQ, pcp: 0, dei: false, vid: 200 },
        { tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, vid: 2001 },
      ],
      etherType: ETHERTYPE_ARP, l3: 22,
    },
  },
];

t.test('take apart with the accessors', async (t) => {
  t.test('untagged', async (t) => {
    const b = PLAIN_ARP;
    t.equal(ETH_DST, 0); t.equal(ETH_SRC, 6); t.equal(ETH_TYPE, 12); t.equal(ETH_HEADER_LEN, 14);
    t.ok(macIsBroadcast(b, ETH_DST), 'dst is broadcast');
    t.ok(macIsGroup(b, ETH_DST), 'broadcast is a group address');
    t.notOk(macIsGroup(b, ETH_SRC), 'src is unicast');
    t.equal(formatMac(b, ETH_SRC), '00:16:ce:6e:8b:24');
    t.equal(ethType(b, 0), ETHERTYPE_ARP);
    t.notOk(isVlanTpid(ethType(b, 0)));
  });

  t.test('802.1Q', async (t) => {
    const b = VLAN_ARP;
    t.notOk(macIsBroadcast(b, ETH_DST));
    t.equal(formatMac(b, ETH_DST), '00:01:02:03:04:05');
    t.equal(ethType(b, 0), ETHERTYPE_VLAN);
    t.ok(isVlanTpid(ethType(b, 0)));
    const tci = u16(b, ETH_TYPE + 2);
    t.equal(tci >>> 13, 0, 'pcp');
    t.equal(tci & 0x1000, 0, 'dei');
    t.equal(tci & 0x0fff, 4095, 'vid');
    // the inner type sits one tag further on: ethType() at l2 + VLAN_TAG_LEN reads it
    t.equal(ethType(b, VLAN_TAG_LEN), ETHERTYPE_ARP);
  });

  t.test('802.1Q over IPv4', async (t) => {
    const b = VLAN_IPV4;
    t.equal(ethType(b, 0), ETHERTYPE_VLAN);
    t.equal(u16(b, ETH_TYPE + 2) & 0x0fff, 102);
    t.equal(ethType(b, VLAN_TAG_LEN), ETHERTYPE_IPV4);
    t.equal(b[18]! >>> 4, 4, 'the byte after the tag is an IPv4 version nibble');
  });

  t.test('802.1ad QinQ', async (t) => {
    const b = QINQ_ARP;
    t.equal(ethType(b, 0), ETHERTYPE_QINQ, 'outer is the S-tag TPID 0x88a8');
    t.ok(isVlanTpid(ethType(b, 0)));
    t.equal(u16(b, ETH_TYPE + 2) & 0x0fff, 200, 'S-tag vid');
    t.equal(ethType(b, VLAN_TAG_LEN), ETHERTYPE_VLAN, 'then a C-tag 0x8100');
    t.equal(u16(b, ETH_TYPE + VLAN_TAG_LEN + 2) & 0x0fff, 2001, 'C-tag vid');
    t.equal(ethType(b, 2 * VLAN_TAG_LEN), ETHERTYPE_ARP);
  });

  t.test('TPIDs', async (t) => {
    t.ok(isVlanTpid(ETHERTYPE_VLAN));
    t.ok(isVlanTpid(ETHERTYPE_QINQ));
    t.ok(isVlanTpid(ETHERTYPE_QINQ_OLD));
    for (const x of [ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_IPV6, 0x0000, 0xffff, 0x8101]) t.notOk(isVlanTpid(x), x.toString(16));
  });
});

t.test('parse gives the repr', async (t) => {
  for (const g of GOLDEN) {
    t.strictSame(parseEthernet(g.frame), g.repr, g.name);
  }
});

t.test('emit into garbage gives the golden header bytes and writes nothing else', async (t) => {
  for (const g of GOLDEN) {
    const { l3, ...r } = g.repr;
    const buf = garbage(g.frame.length + 8);
    const n = emitEthernet(r, buf, 0);
    t.equal(n, l3, `${g.name}: returns the L3 offset`);
    t.strictSame(buf.subarray(0, n), g.frame.subarray(0, n), `${g.name}: header bytes`);
    t.ok(buf.subarray(n).every((x) => x === 0xa5), `${g.name}: nothing written past the header`);
  }
});

t.test('emit at an offset', async (t) => {
  const { l3, ...r } = GOLDEN[3]!.repr;
  const buf = garbage(64);
  const n = emitEthernet(r, buf, 5);
  t.equal(n, l3, 'returns the length written, not an absolute offset');
  t.ok(buf.subarray(0, 5).every((x) => x === 0xa5), 'nothing before the offset');
  t.strictSame(buf.subarray(5, 5 + n), QINQ_ARP.subarray(0, n));
  // and parsing at that offset gives l3 relative to the frame start
  const p = parseEthernet(buf, 5, 64 - 5);
  t.strictSame(p, GOLDEN[3]!.repr);
});

t.test('emit(parse(x)) round trip', async (t) => {
  for (const g of GOLDEN) {
    const p = parseEthernet(g.frame)!;
    const buf = Buffer.from(g.frame);
    buf.fill(0xa5, 0, p.l3);
    t.equal(emitEthernet(p, buf, 0), p.l3);
    t.strictSame(buf, g.frame, g.name);
  }
});

t.test('PCP, DEI and VID bits', async (t) => {
  const r = {
    dst: '02:00:00:00:00:01', src: '02:00:00:00:00:02', etherType: ETHERTYPE_IPV4,
    vlans: [
      { tpid: ETHERTYPE_QINQ_OLD, pcp: 7, dei: true, vid: 1 },
      { tpid: ETHERTYPE_VLAN, pcp: 5, dei: false, vid: 0xabc },
    ],
  };
  const buf = garbage(22);
  t.equal(emitEthernet(r, buf, 0), 22);
  t.strictSame(buf.subarray(12), hex('9100 f001 8100 aabc 0800'));
  t.strictSame(parseEthernet(buf), { ...r, l3: 22 });
  // out-of-range values are masked to their field width, never spill into the neighbours
  const m = garbage(18);
  emitEthernet({ dst: r.dst, src: r.src, etherType: ETHERTYPE_ARP, vlans: [{ tpid: ETHERTYPE_VLAN, pcp: 9, dei: false, vid: 0x1fff }] }, m, 0);
  t.strictSame(m.subarray(12), hex('8100 2fff 0806'), 'pcp 9 -> 1, vid 0x1fff -> 0xfff');
});

t.test('lengths', async (t) => {
  t.equal(parseEthernet(PLAIN_ARP.subarray(0, 13)), null, '13 bytes: too short');
  t.ok(parseEthernet(PLAIN_ARP.subarray(0, 14)), '14 bytes: a header with no payload parses');
  // a TPID with the tag or the inner type cut off
  for (let n = 14; n < 18; n++) t.equal(parseEthernet(VLAN_ARP.subarray(0, n)), null, `802.1Q frame cut at ${n}`);
  t.equal(parseEthernet(VLAN_ARP.subarray(0, 18))?.l3, 18);
  for (let n = 18; n < 22; n++) t.equal(parseEthernet(QINQ_ARP.subarray(0, n)), null, `QinQ frame cut at ${n}`);
  t.equal(parseEthernet(QINQ_ARP.subarray(0, 22))?.l3, 22);
  // the explicit len argument wins over the buffer length
  t.equal(parseEthernet(QINQ_ARP, 0, 20), null);
});

t.test('at most MAX_VLAN_TAGS tags are taken off', async (t) => {
  t.equal(MAX_VLAN_TAGS, 2);
  // three stacked tags: the third TPID is reported as the ethertype (l3 is just past it),
  // so a caller sees "not IPv4/ARP" and drops the frame rather than looking further in.
  const buf = garbage(30);
  const three = {
    dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:02', etherType: ETHERTYPE_ARP,
    vlans: [1, 2, 3].map((vid) => ({ tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, vid })),
  };
  t.equal(emitEthernet(three, buf, 0), 26);
  const p = parseEthernet(buf)!;
  t.equal(p.vlans.length, 2);
  t.equal(p.etherType, ETHERTYPE_VLAN);
  t.equal(p.l3, 22);
});

t.test('emit refuses a bad MAC', async (t) => {
  t.throws(() => emitEthernet({ dst: 'ff:ff:ff:ff:ff', src: '02:00:00:00:00:02', vlans: [], etherType: 0x0800 }, garbage(14), 0));
  t.throws(() => emitEthernet({ dst: 'ff:ff:ff:ff:ff:ff', src: 'nope', vlans: [], etherType: 0x0800 }, garbage(14), 0));
});

t.test('macEq over golden frames', async (t) => {
  // QinQ reply (frame 2 of the same file) is addressed to the requester's source MAC
  const reply = hex('0020 d25a fb3f 0080 ea81 8863 88a8 00c8');
  t.ok(macEq(reply, ETH_DST, QINQ_ARP, ETH_SRC));
  t.notOk(macEq(reply, ETH_SRC, QINQ_ARP, ETH_SRC));
});

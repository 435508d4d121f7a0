// ICMP (RFC 792; RFC 1191 next-hop MTU) over golden bytes: take apart, build into garbage,
// parse, emit, and the check function at every cut-off point. Golden frames come from the shared
// captures (../shared/pcaps, see MANIFEST.md) and, for "fragmentation needed", from a real Linux
// router: none of the shared captures holds one.

import t from 'tap';
import {
  ICMP_TYPE, ICMP_CODE, ICMP_CSUM, ICMP_ECHO_ID, ICMP_ECHO_SEQ, ICMP_NEXT_HOP_MTU, ICMP_POINTER, ICMP_HEADER_LEN, ICMP_QUOTE,
  ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_UNREACH_FRAG_NEEDED, ICMP_UNREACH_PORT, ICMP_ROUTER_SOLICIT,
  ICMP_TIME_EXCEEDED, ICMP_PARAM_PROBLEM, ICMP_REDIRECT, ICMP_SOURCE_QUENCH,
  ICMP_OK, ICMP_TRUNCATED, ICMP_BAD_QUOTE,
  icmpCheck, icmpChecksumOk, icmpType, icmpCode, icmpCsum, icmpEchoId, icmpEchoSeq, icmpNextHopMtu, icmpIsFlowError,
  icmpQuoteL3, icmpQuoteL4, icmpQuoteProto, icmpQuotePayloadLen, icmpQuoteIsLaterFragment, icmpTypeText,
  parseIcmp, emitIcmp, IcmpRepr,
} from '../src/wire/icmp';
import { emitEthernet, ETHERTYPE_IPV4, parseEthernet } from '../src/wire/ethernet';
import { emitIpv4, parseIpv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IP_SRC, IP_DST } from '../src/wire/ipv4';
import { tcpChecksumOk } from '../src/wire/tcp';
import { csumReplace16 } from '../src/wire/checksum';
import { u16, u32 } from '../src/wire/bytes';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
function garbage(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

// A Linux 6.18 router (ip_forward=1, its link toward the server at MTU 1280) refusing a client's
// 1500-byte TCP segment with DF; captured with tcpdump on the client's link, three namespaces
// (client, router, server) on the machine this was developed on, documentation addresses
// (590 bytes: Linux quotes as much as fits in 576, RFC 1812 §4.3.2.3, here 548 bytes of the segment):
// e2:f6:03:62:7b:b2 > 02:bb:ce:ae:9a:88, ethertype IPv4 (0x0800), length 590: (tos 0xc0, ttl 64, id 28740, offset 0, flags [none], proto ICMP (1), length 576)
//     192.0.2.1 > 192.0.2.7: ICMP 198.51.100.21 unreachable - need to frag (mtu 1280), length 556
// 	(tos 0x0, ttl 64, id 60744, offset 0, flags [DF], proto TCP (6), length 1500)
//     192.0.2.7.41236 > 198.51.100.21.80: Flags [.], seq 2691374631:2691376079, ack 4162023592, win 63, options [nop,nop,TS val 3622517800 ecr 225911702], length 1448: HTTP
const FRAG_NEEDED = hex(`
  02bb ceae 9a88 e2f6 0362 7bb2 0800 45c0
  0240 7044 0000 4001 83b0 c000 0201 c000
  0207 0304 1857 0000 0500 4500 05dc ed48
  4000 4006 5b83 c000 0207 c633 6415 a114
  0050 a06b 1e27 f813 70a8 8010 003f f21e
  0000 0101 080a d7eb 3c28 0d77 2396 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161 6161
  6161 6161 6161 6161 6161 6161 6161`);

// cs-ppa1e-evilprogram.pcap, the frame at 17:11:56.211448 (70 bytes): a Windows host's port
// unreachable with the minimal RFC 792 quote (IP header + 8 bytes: the UDP header):
// 00:03:47:b7:f2:f5 > 00:01:5c:22:89:c2, ethertype IPv4 (0x0800), length 70: (tos 0x0, ttl 128, id 83, offset 0, flags [none], proto ICMP (1), length 56)
//     24.6.125.19 > 221.143.42.254: ICMP 24.6.125.19 udp port 1026 unreachable, length 36
// 	(tos 0x0, ttl 51, id 0, offset 0, flags [DF], proto UDP (17), length 386)
//     221.143.42.254.43217 > 24.6.125.19.1026: UDP, length 358
const PORT_UNREACH = hex(`
  0001 5c22 89c2 0003 47b7 f2f5 0800 4500
  0038 0053 0000 8001 9ccb 1806 7d13 dd8f
  2afe 0303 0e7c 0000 0000 4500 0182 0000
  4000 3311 a8c4 dd8f 2afe 1806 7d13 a8d1
  0402 016e 403f`);

// cs-ppa1e-evilprogram.pcap, the first ICMP frame (60 bytes, padded):
// 00:03:47:b7:f2:f5 > 01:00:5e:00:00:02, ethertype IPv4 (0x0800), length 60: (tos 0x0, ttl 128, id 3, offset 0, flags [none], proto ICMP (1), length 28)
//     24.6.125.19 > 224.0.0.2: ICMP router solicitation, length 8
const ROUTER_SOLICIT = hex(`
  0100 5e00 0002 0003 47b7 f2f5 0800 4500
  001c 0003 0000 8001 c5c2 1806 7d13 e000
  0002 0a00 f5ff 0000 0000 0000 0000 0000
  0000 0000 0000 0000 0000 0000`);

// cs-ppa2e-ip_frag_source.pcap #1 and #4, the first 42 bytes of each (Ethernet, IP and the first
// 8 ICMP bytes of a 3508-byte echo sent in three fragments; the capture host's IP checksum is 0):
// 00:25:b3:bf:91:ee > 00:21:29:66:71:95, ethertype IPv4 (0x0800), length 1514: (tos 0x0, ttl 128, id 29812, offset 0, flags [+], proto ICMP (1), length 1500, bad cksum 0 (->d577)!)
//     10.10.0.3 > 192.168.0.128: ICMP echo request, id 1, seq 57, length 1480
const ECHO_REQUEST_HEAD = hex(`
  0021 2966 7195 0025 b3bf 91ee 0800 4500
  05dc 7474 2000 8001 0000 0a0a 0003 c0a8
  0080 0800 deaa 0001 0039`);
// 00:21:29:66:71:95 > 00:25:b3:bf:91:ee, ethertype IPv4 (0x0800), length 1514: (tos 0x0, ttl 127, id 2040, offset 0, flags [+], proto ICMP (1), length 1500)
//     192.168.0.128 > 10.10.0.3: ICMP echo reply, id 1, seq 57, length 1480
const ECHO_REPLY_HEAD = hex(`
  0025 b3bf 91ee 0021 2966 7195 0800 4500
  05dc 07f8 2000 7f01 42f4 c0a8 0080 0a0a
  0003 0000 e6aa 0001 0039`);

const L3 = 14, L4 = 34;

t.test('offsets and type numbers', async (t) => {
  t.strictSame([ICMP_TYPE, ICMP_CODE, ICMP_CSUM, ICMP_ECHO_ID, ICMP_ECHO_SEQ, ICMP_NEXT_HOP_MTU, ICMP_POINTER, ICMP_HEADER_LEN, ICMP_QUOTE],
    [0, 1, 2, 4, 6, 6, 4, 8, 8]);
  t.strictSame([ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT, ICMP_ECHO_REQUEST, ICMP_ROUTER_SOLICIT, ICMP_TIME_EXCEEDED, ICMP_PARAM_PROBLEM],
    [0, 3, 4, 5, 8, 10, 11, 12]);
  t.strictSame([0, 3, 4, 5, 8, 11, 12, 13].map(icmpIsFlowError), [false, true, false, false, false, true, true, false],
    'carried errors: unreachable, time exceeded, parameter problem');
  t.equal(icmpTypeText(ICMP_DEST_UNREACH), 'unreachable');
});

t.test('take apart with the accessors', async (t) => {
  t.test('fragmentation needed (Linux router)', async (t) => {
    const b = FRAG_NEEDED, len = u16(b, L3 + 2) - 20;
    t.equal(b.length, 590);
    t.equal(len, 556);
    t.equal(icmpCheck(b, L4, len), ICMP_OK);
    t.ok(icmpChecksumOk(b, L4, len), 'checksum verifies');
    t.same([icmpType(b, L4), icmpCode(b, L4), icmpCsum(b, L4), icmpNextHopMtu(b, L4)], [ICMP_DEST_UNREACH, ICMP_UNREACH_FRAG_NEEDED, 0x1857, 1280]);
    const q = icmpQuoteL3(L4), ql4 = icmpQuoteL4(b, L4);
    t.same([q, ql4, icmpQuoteProto(b, L4), icmpQuotePayloadLen(b, L4, len), icmpQuoteIsLaterFragment(b, L4)], [L4 + 8, L4 + 28, IPPROTO_TCP, 528, false]);
    t.equal(u32(b, q + IP_SRC), 0xc0000207, 'quoted source 192.0.2.7 (the client)');
    t.equal(u32(b, q + IP_DST), 0xc6336415, 'quoted destination 198.51.100.21');
    t.same([u16(b, ql4), u16(b, ql4 + 2)], [41236, 80], 'quoted ports');
    t.equal(u32(b, ql4 + 4), 2691374631, 'quoted sequence number');
  });
  t.test('port unreachable with an 8-byte quote (Windows)', async (t) => {
    const b = PORT_UNREACH, len = 36;
    t.equal(icmpCheck(b, L4, len), ICMP_OK);
    t.ok(icmpChecksumOk(b, L4, len));
    t.same([icmpType(b, L4), icmpCode(b, L4), icmpCsum(b, L4)], [ICMP_DEST_UNREACH, ICMP_UNREACH_PORT, 0x0e7c]);
    t.same([icmpQuoteProto(b, L4), icmpQuotePayloadLen(b, L4, len)], [IPPROTO_UDP, 8]);
    const ql4 = icmpQuoteL4(b, L4);
    t.same([u16(b, ql4), u16(b, ql4 + 2)], [43217, 1026]);
  });
  t.test('router solicitation: not an error, no quote to check', async (t) => {
    t.equal(icmpCheck(ROUTER_SOLICIT, L4, 8), ICMP_OK);
    t.ok(icmpChecksumOk(ROUTER_SOLICIT, L4, 8));
    t.same([icmpType(ROUTER_SOLICIT, L4), icmpCode(ROUTER_SOLICIT, L4), icmpCsum(ROUTER_SOLICIT, L4)], [ICMP_ROUTER_SOLICIT, 0, 0xf5ff]);
  });
  t.test('echo request and reply heads (first fragments)', async (t) => {
    t.same([icmpType(ECHO_REQUEST_HEAD, L4), icmpEchoId(ECHO_REQUEST_HEAD, L4), icmpEchoSeq(ECHO_REQUEST_HEAD, L4)], [ICMP_ECHO_REQUEST, 1, 57]);
    t.same([icmpType(ECHO_REPLY_HEAD, L4), icmpEchoId(ECHO_REPLY_HEAD, L4), icmpEchoSeq(ECHO_REPLY_HEAD, L4)], [ICMP_ECHO_REPLY, 1, 57]);
    // The packet path turns a request into its reply by changing the type word incrementally
    // (RFC 1624); the real replier's checksum (over the same data) is exactly that.
    const hc = csumReplace16(icmpCsum(ECHO_REQUEST_HEAD, L4), ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8);
    t.equal(hc, icmpCsum(ECHO_REPLY_HEAD, L4), 'incremental 8 -> 0 gives the real reply\'s checksum 0xe6aa');
  });
});

interface Golden { name: string; frame: Buffer; len: number; ip: { tos: number; id: number; ttl: number; df: boolean; src: string; dst: string }; repr: Omit<IcmpRepr, 'data'>; }

const GOLDEN: Golden[] = [
  {
    name: 'fragmentation needed', frame: FRAG_NEEDED, len: 556,
    ip: { tos: 0xc0, id: 28740, ttl: 64, df: false, src: '192.0.2.1', dst: '192.0.2.7' },
    repr: {
      type: 3, code: 4, checksum: 0x1857, checksumOk: true, rest: 1280, nextHopMtu: 1280,
      quote: {
        ip: { version: 4, ihl: 20, tos: 0, totalLength: 1500, id: 60744, df: true, mf: false, fragOffset: 0, ttl: 64, protocol: 6,
          checksum: u16(FRAG_NEEDED, L4 + 8 + 10), checksumOk: true, src: '192.0.2.7', dst: '198.51.100.21', options: new Uint8Array(0) },
        payload: FRAG_NEEDED.subarray(L4 + 28), srcPort: 41236, dstPort: 80,
      },
    },
  },
  {
    name: 'port unreachable', frame: PORT_UNREACH, len: 36,
    ip: { tos: 0, id: 83, ttl: 128, df: false, src: '24.6.125.19', dst: '221.143.42.254' },
    repr: {
      type: 3, code: 3, checksum: 0x0e7c, checksumOk: true, rest: 0,
      quote: {
        ip: { version: 4, ihl: 20, tos: 0, totalLength: 386, id: 0, df: true, mf: false, fragOffset: 0, ttl: 51, protocol: 17,
          checksum: 0xa8c4, checksumOk: true, src: '221.143.42.254', dst: '24.6.125.19', options: new Uint8Array(0) },
        payload: PORT_UNREACH.subarray(L4 + 28), srcPort: 43217, dstPort: 1026,
      },
    },
  },
  {
    name: 'router solicitation', frame: ROUTER_SOLICIT, len: 8,
    ip: { tos: 0, id: 3, ttl: 128, df: false, src: '24.6.125.19', dst: '224.0.0.2' },
    repr: { type: 10, code: 0, checksum: 0xf5ff, checksumOk: true, rest: 0 },
  },
];

t.test('parse', async (t) => {
  for (const g of GOLDEN) {
    const r = parseIcmp(g.frame, L4, g.len);
    if (typeof r === 'string') { t.fail(`${g.name}: ${r}`); continue; }
    const { data, ...rest } = r;
    t.same({ ...rest, quote: rest.quote && { ...rest.quote, payload: Buffer.from(rest.quote.payload) } },
      { ...g.repr, quote: g.repr.quote && { ...g.repr.quote, payload: Buffer.from(g.repr.quote.payload) } }, g.name);
    t.same(Buffer.from(data), g.frame.subarray(L4 + 8, L4 + g.len), `${g.name}: data is everything after the header`);
  }
  // the quoted Linux segment is whole up to its checksum: the TCP checksum can't be verified (cut), but the IP one can
  const q = parseIpv4Header(FRAG_NEEDED, L4 + 8, 548);
  t.ok(typeof q !== 'string' && q.checksumOk, 'quoted IP header checksum verifies');
  t.notOk(tcpChecksumOk(FRAG_NEEDED, L4 + 28, 528, 0xc0000207, 0xc6336415), 'a cut segment does not verify (why nobody checks it)');
});

t.test('build into garbage: every byte of the golden frames', async (t) => {
  for (const g of GOLDEN) {
    const buf = garbage(g.frame.length);
    const e = parseEthernet(g.frame)!;
    const l3 = emitEthernet({ dst: e.dst, src: e.src, vlans: [], etherType: ETHERTYPE_IPV4 }, buf, 0);
    const n = emitIcmp({
      type: g.repr.type, code: g.repr.code, nextHopMtu: g.repr.nextHopMtu, rest: g.repr.nextHopMtu === undefined ? g.repr.rest : undefined,
      data: g.frame.subarray(L4 + 8, L4 + g.len),
    }, buf, l3 + 20);
    t.equal(n, g.len, `${g.name}: length`);
    emitIpv4({ ...g.ip, totalLength: 20 + n, protocol: IPPROTO_ICMP }, buf, l3);
    t.same(buf.subarray(0, L4 + g.len), g.frame.subarray(0, L4 + g.len), `${g.name}: same bytes (checksum computed)`);
  }
  // echo: identifier and sequence
  const buf = garbage(16);
  t.equal(emitIcmp({ type: ICMP_ECHO_REQUEST, id: 1, seq: 57, data: Buffer.from('ab') }, buf, 2), 10);
  t.same(buf.subarray(2, 12), hex('0800 9663 0001 0039 6162'), 'echo request header and data (~(0x0800 + 0x0001 + 0x0039 + 0x6162) = 0x9663)');
  t.ok(icmpChecksumOk(buf, 2, 10));
});

t.test('emit(parse(x)) = x', async (t) => {
  for (const g of GOLDEN) {
    const r = parseIcmp(g.frame, L4, g.len) as IcmpRepr;
    const buf = garbage(g.len);
    emitIcmp({ type: r.type, code: r.code, nextHopMtu: r.nextHopMtu, rest: r.nextHopMtu === undefined ? r.rest : undefined, id: r.id, seq: r.seq, data: r.data }, buf, 0);
    t.same(buf, g.frame.subarray(L4, L4 + g.len), g.name);
  }
});

t.test('check once: every cut-off point of an error, and impossible quotes', async (t) => {
  const b = FRAG_NEEDED;
  const wrong: string[] = [];
  for (let len = 0; len <= 556; len++) {
    const want = len < 8 ? ICMP_TRUNCATED : len < 8 + 20 + 8 ? ICMP_BAD_QUOTE : ICMP_OK;
    const got = icmpCheck(b, L4, len);
    const p = parseIcmp(b, L4, len);
    const parsed = typeof p === 'string' ? p : 'ok';
    const wantParse = want === ICMP_TRUNCATED ? 'truncated' : want === ICMP_BAD_QUOTE ? 'bad_quote' : 'ok';
    if (got !== want || parsed !== wantParse) wrong.push(`length ${len}: check ${got} parse ${parsed}`);
  }
  t.same(wrong, [], 'every length 0..556: truncated below 8, bad_quote below 8 + 20 + 8, then ok');
  const withOpts = Buffer.from(b); withOpts[L4 + 8] = 0x46; // a quoted IHL of 24: needs 24 + 8 bytes
  t.equal(icmpCheck(withOpts, L4, 8 + 24 + 7), ICMP_BAD_QUOTE);
  t.equal(icmpCheck(withOpts, L4, 8 + 24 + 8), ICMP_OK);
  const ihl4 = Buffer.from(b); ihl4[L4 + 8] = 0x44;
  t.equal(icmpCheck(ihl4, L4, 556), ICMP_BAD_QUOTE, 'quoted IHL 4');
  const v6 = Buffer.from(b); v6[L4 + 8] = 0x65;
  t.equal(icmpCheck(v6, L4, 556), ICMP_BAD_QUOTE, 'quoted version 6');
  const te = Buffer.from(b); te[L4] = ICMP_TIME_EXCEEDED;
  t.equal(icmpCheck(te, L4, 30), ICMP_BAD_QUOTE, 'time exceeded is checked like unreachable');
  t.equal(icmpCheck(ROUTER_SOLICIT, L4, 7), ICMP_TRUNCATED);
  const frag = Buffer.from(b); frag[L4 + 8 + 6] = 0x00; frag[L4 + 8 + 7] = 0xb9;
  t.ok(icmpQuoteIsLaterFragment(frag, L4), 'a quoted later fragment is seen');
  const bad = Buffer.from(b); bad[L4 + 100] ^= 1;
  t.notOk(icmpChecksumOk(bad, L4, 556), 'one flipped bit in the quote fails the checksum');
});

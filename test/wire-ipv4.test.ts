// IPv4 headers (RFC 791) over golden bytes copied from the shared captures
// (/work/shared/pcaps, see MANIFEST.md): fragments, good and offload-zeroed checksums,
// options, and the parse errors. The "->xxxx" value tcpdump prints for a bad checksum is the
// checksum it computed itself: emit must write exactly that value.

import t from 'tap';
import {
  IP_VER_IHL, IP_TOS, IP_TOTAL_LEN, IP_ID, IP_FLAGS_FRAG, IP_TTL, IP_PROTO, IP_CSUM, IP_SRC, IP_DST, IP_MIN_HEADER_LEN,
  IP_FLAG_DF, IP_FLAG_MF, IP_FRAG_OFFSET_MASK, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
  ipVersion, ipHeaderLen, ipTotalLen, ipProto, ipTtl, ipSrc, ipDst, ipCsum, setIpSrc, setIpDst, setIpCsum,
  ipIsFragment, ipChecksumOk, parseIpv4Header, emitIpv4, Ipv4Repr, Ipv4Emit,
} from '../src/wire/ipv4';
import { u16 } from '../src/wire/bytes';
import { checksum } from '../src/wire/checksum';
import { parseIpv4 } from '../src/wire/addr';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
function garbage(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

// IPv4 headers (the 20 bytes after the 14-byte Ethernet header) with the tcpdump -v line.
interface Golden {
  name: string;
  /** the 20 (or more) header bytes as captured */
  hdr: Buffer;
  repr: Omit<Ipv4Repr, 'options'>;
  /** the checksum a correct sender would have written (tcpdump's "->xxxx" when bad) */
  goodCsum: number;
}

const GOLDEN: Golden[] = [
  {
    // cs-ppa2e-ip_frag_source.pcap #1: (tos 0x0, ttl 128, id 29812, offset 0, flags [+], proto ICMP (1),
    //   length 1500, bad cksum 0 (->d577)!) 10.10.0.3 > 192.168.0.128: ICMP echo request, id 1, seq 57, length 1480
    name: 'first fragment, offload-zeroed checksum (ip_frag_source #1)',
    hdr: hex('4500 05dc 7474 2000 8001 0000 0a0a 0003 c0a8 0080'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 1500, id: 29812, df: false, mf: true, fragOffset: 0, ttl: 128,
      protocol: IPPROTO_ICMP, checksum: 0, checksumOk: false, src: '10.10.0.3', dst: '192.168.0.128',
    },
    goodCsum: 0xd577,
  },
  {
    // ip_frag_source #2: (tos 0x0, ttl 128, id 29812, offset 1480, flags [+], proto ICMP (1), length 1500,
    //   bad cksum 0 (->d4be)!) 10.10.0.3 > 192.168.0.128: ip-proto-1
    name: 'middle fragment offset 1480, offload-zeroed checksum (ip_frag_source #2)',
    hdr: hex('4500 05dc 7474 20b9 8001 0000 0a0a 0003 c0a8 0080'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 1500, id: 29812, df: false, mf: true, fragOffset: 1480, ttl: 128,
      protocol: IPPROTO_ICMP, checksum: 0, checksumOk: false, src: '10.10.0.3', dst: '192.168.0.128',
    },
    goodCsum: 0xd4be,
  },
  {
    // ip_frag_source #3: (tos 0x0, ttl 128, id 29812, offset 2960, flags [none], proto ICMP (1), length 568,
    //   bad cksum 0 (->f7a9)!) 10.10.0.3 > 192.168.0.128: ip-proto-1
    name: 'last fragment offset 2960, offload-zeroed checksum (ip_frag_source #3)',
    hdr: hex('4500 0238 7474 0172 8001 0000 0a0a 0003 c0a8 0080'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 568, id: 29812, df: false, mf: false, fragOffset: 2960, ttl: 128,
      protocol: IPPROTO_ICMP, checksum: 0, checksumOk: false, src: '10.10.0.3', dst: '192.168.0.128',
    },
    goodCsum: 0xf7a9,
  },
  {
    // ip_frag_source #4: (tos 0x0, ttl 127, id 2040, offset 0, flags [+], proto ICMP (1), length 1500)
    //   192.168.0.128 > 10.10.0.3: ICMP echo reply, id 1, seq 57, length 1480
    name: 'first fragment, good checksum (ip_frag_source #4)',
    hdr: hex('4500 05dc 07f8 2000 7f01 42f4 c0a8 0080 0a0a 0003'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 1500, id: 2040, df: false, mf: true, fragOffset: 0, ttl: 127,
      protocol: IPPROTO_ICMP, checksum: 0x42f4, checksumOk: true, src: '192.168.0.128', dst: '10.10.0.3',
    },
    goodCsum: 0x42f4,
  },
  {
    // ip_frag_source #5: (tos 0x0, ttl 127, id 2040, offset 1480, flags [+], proto ICMP (1), length 1500)
    name: 'middle fragment, good checksum (ip_frag_source #5)',
    hdr: hex('4500 05dc 07f8 20b9 7f01 423b c0a8 0080 0a0a 0003'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 1500, id: 2040, df: false, mf: true, fragOffset: 1480, ttl: 127,
      protocol: IPPROTO_ICMP, checksum: 0x423b, checksumOk: true, src: '192.168.0.128', dst: '10.10.0.3',
    },
    goodCsum: 0x423b,
  },
  {
    // ip_frag_source #6: (tos 0x0, ttl 127, id 2040, offset 2960, flags [none], proto ICMP (1), length 568)
    name: 'last fragment, good checksum (ip_frag_source #6)',
    hdr: hex('4500 0238 07f8 0172 7f01 6526 c0a8 0080 0a0a 0003'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 568, id: 2040, df: false, mf: false, fragOffset: 2960, ttl: 127,
      protocol: IPPROTO_ICMP, checksum: 0x6526, checksumOk: true, src: '192.168.0.128', dst: '10.10.0.3',
    },
    goodCsum: 0x6526,
  },
  {
    // cs-ppa2e-tcp_handshake.pcap #1: (tos 0x0, ttl 128, id 12671, offset 0, flags [DF], proto TCP (6), length 52)
    //   172.16.16.128.2826 > 212.58.226.142.80: Flags [S]
    name: 'DF, TCP SYN (tcp_handshake #1)',
    hdr: hex('4500 0034 317f 4000 8006 55eb ac10 1080 d43a e28e'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 52, id: 12671, df: true, mf: false, fragOffset: 0, ttl: 128,
      protocol: IPPROTO_TCP, checksum: 0x55eb, checksumOk: true, src: '172.16.16.128', dst: '212.58.226.142',
    },
    goodCsum: 0x55eb,
  },
  {
    // cs-ppa2e-nowebaccess2.pcap #3: (tos 0x0, ttl 128, id 1371, offset 0, flags [DF], proto TCP (6), length 52,
    //   bad cksum 0 (->9cda)!) 172.16.0.8.1074 > 172.16.0.102.80: Flags [S]
    name: 'DF, TCP SYN, offload-zeroed checksum (nowebaccess2 #3)',
    hdr: hex('4500 0034 055b 4000 8006 0000 ac10 0008 ac10 0066'),
    repr: {
      version: 4, ihl: 20, tos: 0, totalLength: 52, id: 1371, df: true, mf: false, fragOffset: 0, ttl: 128,
      protocol: IPPROTO_TCP, checksum: 0, checksumOk: false, src: '172.16.0.8', dst: '172.16.0.102',
    },
    goodCsum: 0x9cda,
  },
  {
    // tcpdump-tcp_rst_data-trunc.pcap #1: (tos 0x20, ttl 243, id 8243, offset 0, flags [DF], proto TCP (6), length 98)
    //   199.204.31.89.80 > 172.16.133.41.52875: Flags [R.]
    name: 'tos 0x20, ttl 243 (tcp_rst_data-trunc #1)',
    hdr: hex('4520 0062 2033 4000 f306 4ee3 c7cc 1f59 ac10 8529'),
    repr: {
      version: 4, ihl: 20, tos: 0x20, totalLength: 98, id: 8243, df: true, mf: false, fragOffset: 0, ttl: 243,
      protocol: IPPROTO_TCP, checksum: 0x4ee3, checksumOk: true, src: '199.204.31.89', dst: '172.16.133.41',
    },
    goodCsum: 0x4ee3,
  },
  {
    // dpkt-truncated_dns_2.pcap #1: (tos 0xe0, ttl 62, id 52962, offset 0, flags [none], proto UDP (17), length 268,
    //   bad cksum c429 (->2805)!) 192.168.1.100.53 > 192.168.1.101.1297: DNS
    name: 'wrong (not zeroed) checksum (dpkt-truncated_dns_2 #1)',
    hdr: hex('45e0 010c cee2 0000 3e11 c429 c0a8 0164 c0a8 0165'),
    repr: {
      version: 4, ihl: 20, tos: 0xe0, totalLength: 268, id: 52962, df: false, mf: false, fragOffset: 0, ttl: 62,
      protocol: IPPROTO_UDP, checksum: 0xc429, checksumOk: false, src: '192.168.1.100', dst: '192.168.1.101',
    },
    goodCsum: 0x2805,
  },
  {
    // tcpdump-tcp_header_heapoverflow.pcap #1 (fuzzed): (tos 0x30, ttl 48, id 12336, offset 0, flags [none],
    //   proto TCP (6), length 12336, bad cksum 3030 (->69a8)!) 48.48.48.48.12336 > 48.48.48.48.12336: [|tcp]
    name: 'fuzzed header, total length past the capture (tcp_header_heapoverflow #1)',
    hdr: hex('4530 3030 3030 0000 3006 3030 3030 3030 3030 3030'),
    repr: {
      version: 4, ihl: 20, tos: 0x30, totalLength: 12336, id: 12336, df: false, mf: false, fragOffset: 0, ttl: 48,
      protocol: IPPROTO_TCP, checksum: 0x3030, checksumOk: false, src: '48.48.48.48', dst: '48.48.48.48',
    },
    goodCsum: 0x69a8,
  },
];

function emitFrom(r: Omit<Ipv4Repr, 'options'> & { options?: Uint8Array }): Ipv4Emit {
  return {
    tos: r.tos, totalLength: r.totalLength, id: r.id, df: r.df, mf: r.mf, fragOffset: r.fragOffset, ttl: r.ttl,
    protocol: r.protocol, src: r.src, dst: r.dst, options: r.options ?? new Uint8Array(0),
  };
}

/** The golden header with its checksum field replaced by the correct value. */
function fixed(g: Golden): Buffer {
  const b = Buffer.from(g.hdr);
  b[10] = g.goodCsum >>> 8; b[11] = g.goodCsum & 0xff;
  return b;
}

t.test('take apart with the accessors', async (t) => {
  t.strictSame([IP_VER_IHL, IP_TOS, IP_TOTAL_LEN, IP_ID, IP_FLAGS_FRAG, IP_TTL, IP_PROTO, IP_CSUM, IP_SRC, IP_DST, IP_MIN_HEADER_LEN],
    [0, 1, 2, 4, 6, 8, 9, 10, 12, 16, 20]);
  for (const g of GOLDEN) {
    const b = g.hdr, r = g.repr;
    t.equal(ipVersion(b, 0), 4, `${g.name}: version`);
    t.equal(ipHeaderLen(b, 0), 20, `${g.name}: header length`);
    t.equal(ipTotalLen(b, 0), r.totalLength, `${g.name}: total length`);
    t.equal(ipProto(b, 0), r.protocol, `${g.name}: protocol`);
    t.equal(ipTtl(b, 0), r.ttl, `${g.name}: ttl`);
    t.equal(ipSrc(b, 0), parseIpv4(r.src), `${g.name}: src as u32`);
    t.equal(ipDst(b, 0), parseIpv4(r.dst), `${g.name}: dst as u32`);
    t.equal(ipCsum(b, 0), r.checksum, `${g.name}: checksum field`);
    t.equal(ipIsFragment(b, 0), r.mf || r.fragOffset !== 0, `${g.name}: is fragment`);
    t.equal(ipChecksumOk(b, 0, 20), r.checksumOk, `${g.name}: checksum verifies`);
    const ff = u16(b, IP_FLAGS_FRAG);
    t.equal((ff & IP_FRAG_OFFSET_MASK) * 8, r.fragOffset, `${g.name}: fragment offset in 8-byte units`);
    t.equal((ff & IP_FLAG_MF) !== 0, r.mf);
    t.equal((ff & IP_FLAG_DF) !== 0, r.df);
  }
  // the header is located at l3 inside a frame, not at 0
  const frame = Buffer.concat([Buffer.alloc(14, 0xee), GOLDEN[4]!.hdr]);
  t.equal(ipSrc(frame, 14), 0xc0a80080);
  t.ok(ipChecksumOk(frame, 14, 20));
});

t.test('fragments: MF and offsets 0 / 1480 / 2960 of one datagram', async (t) => {
  const trio = GOLDEN.slice(3, 6).map((g) => parseIpv4Header(g.hdr, 0, 20) as Ipv4Repr);
  t.strictSame(trio.map((r) => [r.mf, r.fragOffset]), [[true, 0], [true, 1480], [false, 2960]]);
  t.ok(trio.every((r) => r.id === 2040), 'one id');
  // each fragment's payload ends where the next one starts
  t.equal(trio[0]!.fragOffset + trio[0]!.totalLength - trio[0]!.ihl, trio[1]!.fragOffset);
  t.equal(trio[1]!.fragOffset + trio[1]!.totalLength - trio[1]!.ihl, trio[2]!.fragOffset);
  // 1480 + 1480 + 548 = the 3508-byte ICMP message (8-byte header + 3500 bytes of data)
  t.equal(trio[2]!.fragOffset + trio[2]!.totalLength - trio[2]!.ihl, 3508);
  // a DF, unfragmented header is not a fragment
  t.notOk(ipIsFragment(GOLDEN[6]!.hdr, 0));
});

t.test('parse gives the repr', async (t) => {
  for (const g of GOLDEN) {
    const r = parseIpv4Header(g.hdr, 0, g.hdr.length);
    t.strictSame(r, { ...g.repr, options: new Uint8Array(0) }, g.name);
  }
});

t.test('checksum: verify, and compute what tcpdump computed', async (t) => {
  for (const g of GOLDEN) {
    const b = Buffer.from(g.hdr);
    b[10] = 0; b[11] = 0;
    t.equal(checksum(b, 0, 20), g.goodCsum, `${g.name}: computed 0x${g.goodCsum.toString(16)}`);
    t.ok(ipChecksumOk(fixed(g), 0, 20), `${g.name}: fixed header verifies`);
  }
  // setIpCsum writes the field the accessor reads
  const b = Buffer.from(GOLDEN[0]!.hdr);
  setIpCsum(b, 0, 0xd577);
  t.equal(ipCsum(b, 0), 0xd577);
  t.ok(ipChecksumOk(b, 0, 20));
  // one flipped bit anywhere breaks it
  for (let bit = 0; bit < 160; bit++) {
    const c = Buffer.from(b);
    c[bit >>> 3]! ^= 0x80 >>> (bit & 7);
    if (ipChecksumOk(c, 0, 20)) t.fail(`bit ${bit} flipped still verifies`);
  }
});

t.test('emit into garbage gives the golden header (with a correct checksum) and writes nothing else', async (t) => {
  for (const g of GOLDEN) {
    const buf = garbage(30);
    const n = emitIpv4(emitFrom(g.repr), buf, 3);
    t.equal(n, 20, g.name);
    t.strictSame(buf.subarray(3, 23), fixed(g), g.name);
    t.ok(buf.subarray(0, 3).every((x) => x === 0xa5) && buf.subarray(23).every((x) => x === 0xa5), `${g.name}: nothing else written`);
  }
});

t.test('emit(parse(x)) round trip', async (t) => {
  for (const g of GOLDEN) {
    const r = parseIpv4Header(g.hdr, 0, 20) as Ipv4Repr;
    const buf = garbage(20);
    emitIpv4(emitFrom(r), buf, 0);
    // byte for byte where the sender's checksum was right; otherwise the checksum is repaired
    t.strictSame(buf, g.repr.checksumOk ? g.hdr : fixed(g), g.name);
    const again = parseIpv4Header(buf, 0, 20) as Ipv4Repr;
    t.strictSame({ ...again, checksum: 0, checksumOk: true }, { ...r, checksum: 0, checksumOk: true }, `${g.name}: same repr`);
    t.ok(again.checksumOk);
  }
});

t.test('address setters', async (t) => {
  const b = fixed(GOLDEN[6]!);
  setIpSrc(b, 0, 0x0a000001);
  setIpDst(b, 0, 0xfffffffe);
  t.equal(ipSrc(b, 0), 0x0a000001);
  t.equal(ipDst(b, 0), 0xfffffffe, 'u32 stays unsigned');
  t.strictSame(b.subarray(12, 20), hex('0a00 0001 ffff fffe'));
});

t.test('IP options change the IHL', async (t) => {
  // Router Alert (RFC 2113): 94 04 0000
  const ra = hex('9404 0000');
  const buf = garbage(40);
  const n = emitIpv4({ totalLength: 24, protocol: 2, src: '10.0.0.1', dst: '224.0.0.22', ttl: 1, options: ra }, buf, 0);
  t.equal(n, 24);
  t.equal(buf[0], 0x46, 'version 4, IHL 6');
  t.equal(ipHeaderLen(buf, 0), 24);
  t.strictSame(buf.subarray(20, 24), ra);
  t.ok(buf.subarray(24).every((x) => x === 0xa5), 'nothing written past the options');
  t.ok(ipChecksumOk(buf, 0, 24), 'checksum covers the options');
  t.notOk(ipChecksumOk(buf, 0, 20), 'and is not the checksum of the first 20 bytes alone');
  const r = parseIpv4Header(buf, 0, 24) as Ipv4Repr;
  t.equal(r.ihl, 24);
  t.strictSame(r.options, new Uint8Array(ra));
  t.ok(r.checksumOk);

  // NOP + Record Route with room for one address (RFC 791 §3.1): 01 07 07 04 00000000 = 8 bytes, IHL 7
  const rr = hex('0107 0704 0000 0000');
  const b2 = garbage(28);
  t.equal(emitIpv4({ totalLength: 28, protocol: IPPROTO_ICMP, src: '10.0.0.1', dst: '10.0.0.2', options: rr }, b2, 0), 28);
  t.equal(b2[0], 0x47);
  const r2 = parseIpv4Header(b2, 0, 28) as Ipv4Repr;
  t.strictSame(r2.options, new Uint8Array(rr));
  // round trip through the repr
  const b3 = garbage(28);
  emitIpv4(emitFrom(r2), b3, 0);
  t.strictSame(b3, b2);

  // the largest header: 40 bytes of options, IHL 15
  const b4 = garbage(60);
  t.equal(emitIpv4({ totalLength: 60, protocol: 6, src: '1.2.3.4', dst: '5.6.7.8', options: new Uint8Array(40).fill(1) }, b4, 0), 60);
  t.equal(b4[0], 0x4f);
  t.equal((parseIpv4Header(b4, 0, 60) as Ipv4Repr).ihl, 60);

  // options must be whole 32-bit words and at most 40 bytes
  t.throws(() => emitIpv4({ totalLength: 23, protocol: 6, src: '1.2.3.4', dst: '5.6.7.8', options: new Uint8Array(3) }, garbage(24), 0));
  t.throws(() => emitIpv4({ totalLength: 64, protocol: 6, src: '1.2.3.4', dst: '5.6.7.8', options: new Uint8Array(44) }, garbage(64), 0));
  t.throws(() => emitIpv4({ totalLength: 20, protocol: 6, src: '1.2.3', dst: '5.6.7.8' }, garbage(20), 0));
  // a header with options needs all of them captured
  t.equal(parseIpv4Header(buf, 0, 23), 'truncated');
});

t.test('defaults of emit', async (t) => {
  const buf = garbage(20);
  emitIpv4({ totalLength: 40, protocol: IPPROTO_TCP, src: '10.0.0.1', dst: '10.0.0.2' }, buf, 0);
  const r = parseIpv4Header(buf, 0, 20) as Ipv4Repr;
  t.strictSame([r.tos, r.id, r.df, r.mf, r.fragOffset, r.ttl], [0, 0, false, false, 0, 64]);
  t.ok(r.checksumOk);
  // a fragment offset that is not a multiple of 8 cannot be represented: it is rounded down
  emitIpv4({ totalLength: 40, protocol: IPPROTO_TCP, src: '10.0.0.1', dst: '10.0.0.2', fragOffset: 1483, mf: true, df: true }, buf, 0);
  const f = parseIpv4Header(buf, 0, 20) as Ipv4Repr;
  t.strictSame([f.fragOffset, f.mf, f.df], [1480, true, true]);
  t.equal(u16(buf, IP_FLAGS_FRAG), IP_FLAG_DF | IP_FLAG_MF | 185);
});

t.test('parse errors', async (t) => {
  const good = fixed(GOLDEN[6]!);
  for (let n = 0; n < 20; n++) t.equal(parseIpv4Header(good, 0, n), 'truncated', `${n} bytes`);
  const withByte0 = (v: number): Buffer => { const b = Buffer.from(good); b[0] = v; return b; };
  t.equal(parseIpv4Header(withByte0(0x65), 0, 20), 'bad_version', 'IPv6 version nibble');
  t.equal(parseIpv4Header(withByte0(0x05), 0, 20), 'bad_version', 'version 0');
  for (let ihl = 0; ihl < 5; ihl++) t.equal(parseIpv4Header(withByte0(0x40 | ihl), 0, 20), 'bad_ihl', `ihl ${ihl}`);
  t.equal(parseIpv4Header(withByte0(0x46), 0, 20), 'truncated', 'ihl 6 with 20 bytes captured');
  const withTotal = (v: number): Buffer => { const b = Buffer.from(good); b[2] = v >>> 8; b[3] = v & 0xff; return b; };
  t.equal(parseIpv4Header(withTotal(19), 0, 20), 'bad_total_length');
  t.equal(parseIpv4Header(withTotal(0), 0, 20), 'bad_total_length');
  t.equal(typeof parseIpv4Header(withTotal(20), 0, 20), 'object', 'total length == header length is a header with no payload');
  // a total length beyond the capture is not the header's business (the frame was snapped)
  t.equal(typeof parseIpv4Header(GOLDEN[10]!.hdr, 0, 32), 'object');
});

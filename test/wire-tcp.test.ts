// TCP headers (RFC 9293 §3.1) over golden bytes copied from the shared captures
// (/work/shared/pcaps, see MANIFEST.md): all eight flags, data offset, the options Linux and
// Windows put in a SYN, checksums (good, offload-broken, snapped), and malformed options.

import t from 'tap';
import {
  TCP_SPORT, TCP_DPORT, TCP_SEQ, TCP_ACK, TCP_DOFF, TCP_FLAGS, TCP_WINDOW, TCP_CSUM, TCP_URG, TCP_MIN_HEADER_LEN,
  TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACKF, TCP_URGF, TCP_ECE, TCP_CWR,
  TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WSCALE, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP,
  tcpSport, tcpDport, tcpHeaderLen, tcpFlags, tcpCsum, setTcpCsum, tcpChecksum, tcpChecksumOk,
  parseTcpOptions, parseTcp, tcpFlagsText, emitTcp, TcpRepr, TcpEmit, TcpOptions,
} from '../src/wire/tcp';
import { parseIpv4Header, Ipv4Repr, ipSrc, ipDst } from '../src/wire/ipv4';
import { u32, u16 } from '../src/wire/bytes';
import { fold, sum16, pseudoHeaderSum } from '../src/wire/checksum';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
function garbage(n: number): Buffer {
  return Buffer.alloc(n, 0xa5);
}

/** A whole Ethernet/IPv4/TCP frame: where the TCP header is and how long the segment is. */
interface Frame { buf: Buffer; l4: number; l4len: number; src: number; dst: number; }
function frame(buf: Buffer): Frame {
  const ip = parseIpv4Header(buf, 14, buf.length - 14) as Ipv4Repr;
  return { buf, l4: 14 + ip.ihl, l4len: ip.totalLength - ip.ihl, src: ipSrc(buf, 14), dst: ipDst(buf, 14) };
}

// tcpdump-tcp_eight_lowest_weight_flags_set.pcap #1 (54 bytes):
// 42:01:0a:f0:00:17 > 42:01:0a:f0:00:01, ethertype IPv4 (0x0800), length 54: (tos 0x0, ttl 64, id 36426, offset 0,
//   flags [none], proto TCP (6), length 40) 10.0.0.2.6260 > 10.128.0.2.80: Flags [FSRP.UEW], cksum 0xf4c3 (correct),
//   seq 576462951, ack 486026015, win 512, urg 0, length 0
const EIGHT_FLAGS = hex(`
  4201 0af0 0001 4201 0af0 0017 0800 4500
  0028 8e4a 0000 4006 d802 0a00 0002 0a80
  0002 1874 0050 225c 2067 1cf8 2b1f 50ff
  0200 f4c3 0000`);

// gopacket-test_ethernet.pcap #1 (74 bytes):
// 58:6d:8f:99:ec:a8 > c4:39:3a:02:a9:2a, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 23455, offset 0,
//   flags [DF], proto TCP (6), length 60) 10.1.1.2.44644 > 10.1.1.1.80: Flags [S], cksum 0xe47d (correct),
//   seq 2471086128, win 29200, options [mss 1460,sackOK,TS val 1032819631 ecr 0,nop,wscale 7], length 0
const LINUX_SYN = hex(`
  c439 3a02 a92a 586d 8f99 eca8 0800 4500
  003c 5b9f 4000 4006 c918 0a01 0102 0a01
  0101 ae64 0050 9349 c830 0000 0000 a002
  7210 e47d 0000 0204 05b4 0402 080a 3d8f
  93af 0000 0000 0103 0307`);

// gopacket-test_ethernet.pcap #2 (74 bytes):
// c4:39:3a:02:a9:2a > 58:6d:8f:99:ec:a8, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 0, offset 0,
//   flags [DF], proto TCP (6), length 60) 10.1.1.1.80 > 10.1.1.2.44644: Flags [S.], cksum 0x21e6 (correct),
//   seq 4188542938, ack 2471086129, win 5792, options [mss 1460,sackOK,TS val 57936131 ecr 1032819631,nop,wscale 4], length 0
const LINUX_SYNACK = hex(`
  586d 8f99 eca8 c439 3a02 a92a 0800 4500
  003c 0000 4000 4006 24b8 0a01 0101 0a01
  0102 0050 ae64 f9a8 17da 9349 c831 a012
  16a0 21e6 0000 0204 05b4 0402 080a 0374
  0903 3d8f 93af 0103 0304`);

// gopacket-test_ethernet.pcap #3 (66 bytes):
// 58:6d:8f:99:ec:a8 > c4:39:3a:02:a9:2a, ethertype IPv4 (0x0800), length 66: (tos 0x0, ttl 64, id 23456, offset 0,
//   flags [DF], proto TCP (6), length 52) 10.1.1.2.44644 > 10.1.1.1.80: Flags [.], cksum 0x6669 (correct),
//   seq 1, ack 1, win 229, options [nop,nop,TS val 1032819632 ecr 57936131], length 0
const LINUX_ACK = hex(`
  c439 3a02 a92a 586d 8f99 eca8 0800 4500
  0034 5ba0 4000 4006 c91f 0a01 0102 0a01
  0101 ae64 0050 9349 c831 f9a8 17db 8010
  00e5 6669 0000 0101 080a 3d8f 93b0 0374
  0903`);

// gopacket-test_ethernet.pcap #4 (138 bytes):
// 58:6d:8f:99:ec:a8 > c4:39:3a:02:a9:2a, ethertype IPv4 (0x0800), length 138: (tos 0x0, ttl 64, id 23457, offset 0,
//   flags [DF], proto TCP (6), length 124) 10.1.1.2.44644 > 10.1.1.1.80: Flags [P.], cksum 0x924f (correct),
//   seq 1:73, ack 1, win 229, options [nop,nop,TS val 1032819632 ecr 57936131], length 72: HTTP: GET / HTTP/1.1
const LINUX_DATA = hex(`
  c439 3a02 a92a 586d 8f99 eca8 0800 4500
  007c 5ba1 4000 4006 c8d6 0a01 0102 0a01
  0101 ae64 0050 9349 c831 f9a8 17db 8018
  00e5 924f 0000 0101 080a 3d8f 93b0 0374
  0903 4745 5420 2f20 4854 5450 2f31 2e31
  0d0a 486f 7374 3a20 3130 2e31 2e31 2e31
  0d0a 5573 6572 2d41 6765 6e74 3a20 6375
  726c 2f37 2e34 372e 300d 0a41 6363 6570
  743a 202a 2f2a 0d0a 0d0a`);

// cs-ppa2e-tcp_handshake.pcap #1 (66 bytes), Windows option layout:
// 00:21:6a:5b:7d:4a > 00:05:5d:21:99:4c, ethertype IPv4 (0x0800), length 66: (tos 0x0, ttl 128, id 12671, offset 0,
//   flags [DF], proto TCP (6), length 52) 172.16.16.128.2826 > 212.58.226.142.80: Flags [S], cksum 0xcfeb (correct),
//   seq 3691127924, win 8192, options [mss 1460,nop,wscale 2,nop,nop,sackOK], length 0
const WINDOWS_SYN = hex(`
  0005 5d21 994c 0021 6a5b 7d4a 0800 4500
  0034 317f 4000 8006 55eb ac10 1080 d43a
  e28e 0b0a 0050 dc02 2474 0000 0000 8002
  2000 cfeb 0000 0204 05b4 0103 0302 0101
  0402`);

// cs-ppa2e-tcp_handshake.pcap #2 (66 bytes):
// 00:05:5d:21:99:4c > 00:21:6a:5b:7d:4a, ethertype IPv4 (0x0800), length 66: (tos 0x0, ttl 49, id 0, offset 0,
//   flags [none], proto TCP (6), length 52) 212.58.226.142.80 > 172.16.16.128.2826: Flags [S.], cksum 0x9ac0 (correct),
//   seq 233779340, ack 3691127925, win 5840, options [mss 1406,nop,nop,sackOK,nop,wscale 7], length 0
const SYNACK_NO_TS = hex(`
  0021 6a5b 7d4a 0005 5d21 994c 0800 4500
  0034 0000 0000 3106 166b d43a e28e ac10
  1080 0050 0b0a 0def 308c dc02 2475 8012
  16d0 9ac0 0000 0204 057e 0101 0402 0103
  0307`);

// cs-ppa2e-nowebaccess2.pcap #3 (66 bytes), checksum left to an offloading NIC:
// 00:25:b3:bf:91:ee > 00:21:70:c0:56:f0, ethertype IPv4 (0x0800), length 66: (tos 0x0, ttl 128, id 1371, offset 0,
//   flags [DF], proto TCP (6), length 52, bad cksum 0 (->9cda)!) 172.16.0.8.1074 > 172.16.0.102.80: Flags [S],
//   cksum 0x58b5 (incorrect -> 0x68f1), seq 4061304577, win 8192, options [mss 1460,nop,wscale 2,nop,nop,sackOK], length 0
const OFFLOAD_SYN = hex(`
  0021 70c0 56f0 0025 b3bf 91ee 0800 4500
  0034 055b 4000 8006 0000 ac10 0008 ac10
  0066 0432 0050 f212 9701 0000 0000 8002
  2000 58b5 0000 0204 05b4 0103 0302 0101
  0402`);

// cs-ppa2e-nowebaccess2.pcap #4 (60 bytes: 54 + 6 bytes of Ethernet padding the checksum must not cover):
// 00:21:70:c0:56:f0 > 00:25:b3:bf:91:ee, ethertype IPv4 (0x0800), length 60: (tos 0x0, ttl 64, id 0, offset 0,
//   flags [DF], proto TCP (6), length 40) 172.16.0.102.80 > 172.16.0.8.1074: Flags [R.], cksum 0xc9aa (correct),
//   seq 0, ack 4061304578, win 0, length 0
const PADDED_RST = hex(`
  0025 b3bf 91ee 0021 70c0 56f0 0800 4500
  0028 0000 4000 4006 e241 ac10 0066 ac10
  0008 0050 0432 0000 0000 f212 9702 5014
  0000 c9aa 0000 0000 0000 0000`);

// tcpdump-tcp_rst_data-trunc.pcap #1 (111 of 112 bytes captured):
// 00:90:7f:3e:02:d0 > 00:21:70:67:6f:50, ethertype IPv4 (0x0800), length 112: (tos 0x20, ttl 243, id 8243, offset 0,
//   flags [DF], proto TCP (6), length 98) 199.204.31.89.80 > 172.16.133.41.52875: Flags [R.],
//   seq 1617159969:1617160027, ack 1936660873, win 5785, length 58 [!RST+ BIG-IP: [0x11c5672:3045] {peer]
const SNAPPED_RST = hex(`
  0021 7067 6f50 0090 7f3e 02d0 0800 4520
  0062 2033 4000 f306 4ee3 c7cc 1f59 ac10
  8529 0050 ce8b 6063 e721 736f 1989 5014
  1699 8471 0000 4249 472d 4950 3a20 5b30
  7831 3163 3536 3732 3a33 3034 355d 207b
  7065 6572 7d20 5443 5020 5253 5420 6672
  6f6d 2072 656d 6f74 6520 7379 7374 65`);

// tcpdump-tcp_header_heapoverflow.pcap #1 (fuzzed, 46 of 262144 bytes captured: 12 bytes of TCP):
// 30:30:30:30:30:30 > 30:30:30:30:30:30, ethertype IPv4 (0x0800), length 262144: (tos 0x30, ttl 48, id 12336,
//   offset 0, flags [none], proto TCP (6), length 12336, bad cksum 3030 (->69a8)!) 48.48.48.48.12336 > 48.48.48.48.12336: [|tcp]
const HEAP_OVERFLOW = hex(`
  3030 3030 3030 3030 3030 3030 0800 4530
  3030 3030 0000 3006 3030 3030 3030 3030
  3030 3030 3030 3030 3030 3030 3030`);

interface Golden { name: string; buf: Buffer; repr: TcpRepr; emit: TcpEmit; sameBytes: boolean; }

const GOLDEN: Golden[] = [
  {
    name: 'all eight flags (tcp_eight_lowest_weight_flags_set #1)', buf: EIGHT_FLAGS, sameBytes: true,
    repr: {
      srcPort: 6260, dstPort: 80, seq: 576462951, ack: 486026015, headerLen: 20, flags: 0xff, window: 512,
      checksum: 0xf4c3, urgent: 0, options: { kinds: [] },
    },
    emit: { srcPort: 6260, dstPort: 80, seq: 576462951, ack: 486026015, flags: 0xff, window: 512, urgent: 0 },
  },
  {
    name: 'Linux SYN: MSS, SACK_PERM, TS, NOP, WS 7 (gopacket #1)', buf: LINUX_SYN, sameBytes: true,
    repr: {
      srcPort: 44644, dstPort: 80, seq: 2471086128, ack: 0, headerLen: 40, flags: TCP_SYN, window: 29200,
      checksum: 0xe47d, urgent: 0,
      options: { kinds: [2, 4, 8, 1, 3], mss: 1460, sackPermitted: true, tsval: 1032819631, tsecr: 0, wscale: 7 },
    },
    emit: {
      srcPort: 44644, dstPort: 80, seq: 2471086128, ack: 0, flags: TCP_SYN, window: 29200,
      options: { mss: 1460, sackPermitted: true, tsval: 1032819631, tsecr: 0, wscale: 7 },
    },
  },
  {
    name: 'Linux SYN-ACK: MSS, SACK_PERM, TS, NOP, WS 4 (gopacket #2)', buf: LINUX_SYNACK, sameBytes: true,
    repr: {
      srcPort: 80, dstPort: 44644, seq: 4188542938, ack: 2471086129, headerLen: 40, flags: TCP_SYN | TCP_ACKF, window: 5792,
      checksum: 0x21e6, urgent: 0,
      options: { kinds: [2, 4, 8, 1, 3], mss: 1460, sackPermitted: true, tsval: 57936131, tsecr: 1032819631, wscale: 4 },
    },
    emit: {
      srcPort: 80, dstPort: 44644, seq: 4188542938, ack: 2471086129, flags: TCP_SYN | TCP_ACKF, window: 5792,
      options: { mss: 1460, sackPermitted: true, tsval: 57936131, tsecr: 1032819631, wscale: 4 },
    },
  },
  {
    name: 'ACK with NOP, NOP, TS (gopacket #3)', buf: LINUX_ACK, sameBytes: true,
    repr: {
      srcPort: 44644, dstPort: 80, seq: 2471086129, ack: 4188542939, headerLen: 32, flags: TCP_ACKF, window: 229,
      checksum: 0x6669, urgent: 0, options: { kinds: [1, 1, 8], tsval: 1032819632, tsecr: 57936131 },
    },
    emit: {
      srcPort: 44644, dstPort: 80, seq: 2471086129, ack: 4188542939, flags: TCP_ACKF, window: 229,
      options: { tsval: 1032819632, tsecr: 57936131 },
    },
  },
  {
    name: 'PSH+ACK with 72 bytes of HTTP (gopacket #4)', buf: LINUX_DATA, sameBytes: true,
    repr: {
      srcPort: 44644, dstPort: 80, seq: 2471086129, ack: 4188542939, headerLen: 32, flags: TCP_PSH | TCP_ACKF, window: 229,
      checksum: 0x924f, urgent: 0, options: { kinds: [1, 1, 8], tsval: 1032819632, tsecr: 57936131 },
    },
    emit: {
      srcPort: 44644, dstPort: 80, seq: 2471086129, ack: 4188542939, flags: TCP_PSH | TCP_ACKF, window: 229,
      options: { tsval: 1032819632, tsecr: 57936131 },
    },
  },
  {
    // emitTcp lays options out as Linux does, so a Windows SYN comes back with the same
    // meaning in a different order (see 'Windows option order' below)
    name: 'Windows SYN: MSS, NOP, WS 2, NOP, NOP, SACK_PERM (tcp_handshake #1)', buf: WINDOWS_SYN, sameBytes: false,
    repr: {
      srcPort: 2826, dstPort: 80, seq: 3691127924, ack: 0, headerLen: 32, flags: TCP_SYN, window: 8192,
      checksum: 0xcfeb, urgent: 0, options: { kinds: [2, 1, 3, 1, 1, 4], mss: 1460, wscale: 2, sackPermitted: true },
    },
    emit: {
      srcPort: 2826, dstPort: 80, seq: 3691127924, ack: 0, flags: TCP_SYN, window: 8192,
      options: { mss: 1460, wscale: 2, sackPermitted: true },
    },
  },
  {
    name: 'SYN-ACK: MSS, NOP, NOP, SACK_PERM, NOP, WS 7 (tcp_handshake #2)', buf: SYNACK_NO_TS, sameBytes: true,
    repr: {
      srcPort: 80, dstPort: 2826, seq: 233779340, ack: 3691127925, headerLen: 32, flags: TCP_SYN | TCP_ACKF, window: 5840,
      checksum: 0x9ac0, urgent: 0, options: { kinds: [2, 1, 1, 4, 1, 3], mss: 1406, sackPermitted: true, wscale: 7 },
    },
    emit: {
      srcPort: 80, dstPort: 2826, seq: 233779340, ack: 3691127925, flags: TCP_SYN | TCP_ACKF, window: 5840,
      options: { mss: 1406, sackPermitted: true, wscale: 7 },
    },
  },
  {
    name: 'RST+ACK in a padded 60-byte frame (nowebaccess2 #4)', buf: PADDED_RST, sameBytes: true,
    repr: {
      srcPort: 80, dstPort: 1074, seq: 0, ack: 4061304578, headerLen: 20, flags: TCP_RST | TCP_ACKF, window: 0,
      checksum: 0xc9aa, urgent: 0, options: { kinds: [] },
    },
    emit: { srcPort: 80, dstPort: 1074, seq: 0, ack: 4061304578, flags: TCP_RST | TCP_ACKF, window: 0 },
  },
];

t.test('take apart with the accessors', async (t) => {
  t.strictSame([TCP_SPORT, TCP_DPORT, TCP_SEQ, TCP_ACK, TCP_DOFF, TCP_FLAGS, TCP_WINDOW, TCP_CSUM, TCP_URG, TCP_MIN_HEADER_LEN],
    [0, 2, 4, 8, 12, 13, 14, 16, 18, 20]);
  t.strictSame([TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACKF, TCP_URGF, TCP_ECE, TCP_CWR], [1, 2, 4, 8, 16, 32, 64, 128]);
  t.strictSame([TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WSCALE, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP], [0, 1, 2, 3, 4, 5, 8]);
  for (const g of GOLDEN) {
    const l4 = 34, b = g.buf;
    t.equal(tcpSport(b, l4), g.repr.srcPort, `${g.name}: sport`);
    t.equal(tcpDport(b, l4), g.repr.dstPort, `${g.name}: dport`);
    t.equal(u32(b, l4 + TCP_SEQ), g.repr.seq, `${g.name}: seq`);
    t.equal(u32(b, l4 + TCP_ACK), g.repr.ack, `${g.name}: ack`);
    t.equal(tcpHeaderLen(b, l4), g.repr.headerLen, `${g.name}: data offset × 4`);
    t.equal(tcpFlags(b, l4), g.repr.flags, `${g.name}: flags`);
    t.equal(u16(b, l4 + TCP_WINDOW), g.repr.window, `${g.name}: window`);
    t.equal(tcpCsum(b, l4), g.repr.checksum, `${g.name}: checksum field`);
  }
});

t.test('all eight flags', async (t) => {
  const f = tcpFlags(EIGHT_FLAGS, 34);
  t.equal(f, 0xff);
  for (const bit of [TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACKF, TCP_URGF, TCP_ECE, TCP_CWR]) t.ok(f & bit, `bit 0x${bit.toString(16)}`);
  // tcpdump prints Flags [FSRP.UEW]; ours orders S first
  t.equal(tcpFlagsText(f), 'SFRP.UEW');
  t.equal(tcpFlagsText(TCP_SYN), 'S');
  t.equal(tcpFlagsText(TCP_SYN | TCP_ACKF), 'S.');
  t.equal(tcpFlagsText(TCP_RST | TCP_ACKF), 'R.');
  t.equal(tcpFlagsText(0), 'none');
  // "a plain SYN" is SYN set and ACK clear: this segment has ACK, so it is not one
  t.notOk((f & (TCP_SYN | TCP_ACKF)) === TCP_SYN);
  // the data offset nibble is 5 and the byte's low nibble (reserved + NS/AE) does not leak into it
  const b = Buffer.from(EIGHT_FLAGS);
  b[34 + TCP_DOFF] = 0x5f;
  t.equal(tcpHeaderLen(b, 34), 20);
  t.equal(tcpFlags(b, 34), 0xff, 'NS/AE is not one of the eight');
});

t.test('parse gives the repr', async (t) => {
  for (const g of GOLDEN) {
    t.strictSame(parseTcp(g.buf, 34, g.buf.length - 34), g.repr, g.name);
  }
});

t.test('checksums of real segments', async (t) => {
  for (const g of GOLDEN) {
    const f = frame(g.buf);
    // tshark and tcpdump both say "correct" for every golden segment above
    t.ok(tcpChecksumOk(f.buf, f.l4, f.l4len, f.src, f.dst), `${g.name}: verifies`);
    t.equal(tcpChecksum(f.buf, f.l4, f.l4len, f.src, f.dst), g.repr.checksum, `${g.name}: recomputed`);
  }
  // the padded RST: covering the 6 padding bytes too would be wrong (they happen to be zero, so
  // make them not zero to prove they are outside the sum)
  const p = Buffer.from(PADDED_RST);
  p.fill(0x5a, 54);
  const fp = frame(p);
  t.equal(fp.l4len, 20);
  t.ok(tcpChecksumOk(p, fp.l4, fp.l4len, fp.src, fp.dst), 'Ethernet padding is not part of the segment');

  // nowebaccess2 #3: offload left 0x58b5 in the field; tcpdump computes 0x68f1
  const o = frame(Buffer.from(OFFLOAD_SYN));
  t.notOk(tcpChecksumOk(o.buf, o.l4, o.l4len, o.src, o.dst), 'offload SYN: bad');
  t.equal(tcpChecksum(o.buf, o.l4, o.l4len, o.src, o.dst), 0x68f1, 'offload SYN: computes what tcpdump computed');
  t.strictSame(o.buf, OFFLOAD_SYN, 'computing leaves the buffer as it was');
  setTcpCsum(o.buf, o.l4, 0x68f1);
  t.ok(tcpChecksumOk(o.buf, o.l4, o.l4len, o.src, o.dst), 'offload SYN, repaired: good');

  // one flipped bit anywhere in the segment, or a different address, breaks it
  const d = frame(Buffer.from(LINUX_DATA));
  let flips = 0;
  for (let bit = 0; bit < d.l4len * 8; bit++) {
    const b = Buffer.from(d.buf);
    b[d.l4 + (bit >>> 3)]! ^= 0x80 >>> (bit & 7);
    if (!tcpChecksumOk(b, d.l4, d.l4len, d.src, d.dst)) flips++;
  }
  t.equal(flips, d.l4len * 8, 'every single-bit error is caught');
  t.notOk(tcpChecksumOk(d.buf, d.l4, d.l4len, d.src, d.dst + 1), 'the pseudo-header is covered');
  t.ok(tcpChecksumOk(d.buf, d.l4, d.l4len, d.src, d.dst));
});

t.test('the other zero in the TCP checksum field', async (t) => {
  // A segment whose correct checksum is 0x0000 (urgent pointer chosen to make it so; URG is
  // clear, but the field is still summed). 0xffff is the other one's-complement zero: the plain
  // RFC 1071 "sum including the field is -0" test accepts it, and so does tcpdump ("correct").
  // tshark 4.0 does not: it reports 0xffff as bad ("should be 0x0000 (see RFC 1624)").
  // tcpChecksumOk compares the field with the canonical value, so it agrees with tshark, which
  // is the oracle of the conformance test; checked with tshark -o tcp.check_checksum:TRUE.
  const b = Buffer.from(LINUX_ACK);
  const f = frame(b);
  b[f.l4 + TCP_URG] = 0; b[f.l4 + TCP_URG + 1] = 0;
  setTcpCsum(b, f.l4, 0);
  const s = fold(sum16(b, f.l4, f.l4len, pseudoHeaderSum(f.src, f.dst, 6, f.l4len)));
  const urg = 0xffff - s;
  b[f.l4 + TCP_URG] = urg >>> 8; b[f.l4 + TCP_URG + 1] = urg & 0xff;
  t.equal(tcpChecksum(b, f.l4, f.l4len, f.src, f.dst), 0x0000, 'canonical checksum is +0');
  t.ok(tcpChecksumOk(b, f.l4, f.l4len, f.src, f.dst), '0x0000 verifies');
  setTcpCsum(b, f.l4, 0xffff);
  t.notOk(tcpChecksumOk(b, f.l4, f.l4len, f.src, f.dst), '0xffff is refused, as tshark refuses it');
  t.equal(fold(sum16(b, f.l4, f.l4len, pseudoHeaderSum(f.src, f.dst, 6, f.l4len))), 0xffff,
    'though the RFC 1071 sum over the segment is -0');
});

t.test('emit into garbage, then checksum, gives the golden segment', async (t) => {
  for (const g of GOLDEN) {
    const f = frame(g.buf);
    const hl = g.repr.headerLen;
    // the frame up to l4 and the payload after the header are copied; the header is emitted over garbage
    const b = Buffer.from(g.buf);
    b.fill(0xa5, f.l4, f.l4 + hl);
    const n = emitTcp(g.emit, b, f.l4);
    t.equal(n, hl, `${g.name}: header length`);
    t.equal(tcpCsum(b, f.l4), 0, `${g.name}: emit leaves the checksum 0`);
    setTcpCsum(b, f.l4, tcpChecksum(b, f.l4, f.l4len, f.src, f.dst));
    if (g.sameBytes) {
      t.strictSame(b, g.buf, `${g.name}: bytes`);
    } else {
      t.notSame(b, g.buf, `${g.name}: different option order`);
      const again = parseTcp(b, f.l4, b.length - f.l4) as TcpRepr;
      const { kinds: _k, ...semantic } = g.repr.options;
      const { kinds: _k2, ...semantic2 } = again.options;
      t.strictSame(semantic2, semantic, `${g.name}: same option values`);
      t.ok(tcpChecksumOk(b, f.l4, f.l4len, f.src, f.dst));
    }
    // nothing after the header: emit into a buffer of exactly header + 8 garbage bytes
    const g2 = garbage(hl + 8);
    t.equal(emitTcp(g.emit, g2, 0), hl);
    t.ok(g2.subarray(hl).every((x) => x === 0xa5), `${g.name}: nothing written past the header`);
  }
});

t.test('emit(parse(x)) round trip', async (t) => {
  for (const g of GOLDEN) {
    const r = parseTcp(g.buf, 34, g.buf.length - 34) as TcpRepr;
    const o = r.options;
    const e: TcpEmit = {
      srcPort: r.srcPort, dstPort: r.dstPort, seq: r.seq, ack: r.ack, flags: r.flags, window: r.window, urgent: r.urgent,
      options: { mss: o.mss, wscale: o.wscale, sackPermitted: o.sackPermitted, tsval: o.tsval, tsecr: o.tsecr },
    };
    const b = Buffer.from(g.buf);
    b.fill(0xa5, 34, 34 + r.headerLen);
    emitTcp(e, b, 34);
    const f = frame(b);
    setTcpCsum(b, 34, tcpChecksum(b, 34, f.l4len, f.src, f.dst));
    if (g.sameBytes) t.strictSame(b, g.buf, g.name);
    const again = parseTcp(b, 34, b.length - 34) as TcpRepr;
    t.strictSame({ ...again, options: { ...again.options, kinds: [] } }, { ...r, options: { ...r.options, kinds: [] } }, `${g.name}: repr`);
  }
});

t.test('Windows option order', async (t) => {
  const r = parseTcp(WINDOWS_SYN, 34, WINDOWS_SYN.length - 34) as TcpRepr;
  t.strictSame(r.options.kinds, [TCPOPT_MSS, TCPOPT_NOP, TCPOPT_WSCALE, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM]);
  const b = garbage(32);
  emitTcp({ srcPort: 1, dstPort: 2, flags: TCP_SYN, options: { mss: 1460, wscale: 2, sackPermitted: true } }, b, 0);
  // Linux order: MSS, NOP, NOP, SACK_PERM, NOP, WS
  t.strictSame(b.subarray(20), hex('0204 05b4 0101 0402 0103 0302'));
});

t.test('emit defaults and the data offset byte', async (t) => {
  const b = garbage(24);
  t.equal(emitTcp({ srcPort: 40000, dstPort: 80, flags: TCP_SYN }, b, 0), 20);
  t.strictSame(b.subarray(0, 20), hex('9c40 0050 0000 0000 0000 0000 5002 ffff 0000 0000'));
  t.equal(emitTcp({ srcPort: 40000, dstPort: 80, flags: TCP_SYN, options: { mss: 536 } }, b, 0), 24);
  t.equal(b[12], 0x60, 'data offset 6, reserved bits cleared');
  t.strictSame(b.subarray(20), hex('0204 0218'));
  // every option: 4 + 12 + 4 = 40 bytes of header, data offset 10
  const all = garbage(44);
  t.equal(emitTcp({ srcPort: 1, dstPort: 2, flags: TCP_SYN, options: { mss: 1, sackPermitted: true, tsval: 2, tsecr: 3, wscale: 14 } }, all, 0), 40);
  t.equal(all[12], 0xa0);
  t.strictSame(all.subarray(40), hex('a5a5 a5a5'));
});

t.test('parse errors', async (t) => {
  for (let n = 0; n < 20; n++) t.equal(parseTcp(LINUX_SYN, 34, n), 'truncated', `${n} bytes`);
  for (let n = 20; n < 40; n++) t.equal(parseTcp(LINUX_SYN, 34, n), 'truncated', `${n} of a 40-byte header`);
  t.equal(typeof parseTcp(LINUX_SYN, 34, 40), 'object');
  for (let doff = 0; doff < 5; doff++) {
    const b = Buffer.from(EIGHT_FLAGS);
    b[34 + TCP_DOFF] = doff << 4;
    t.equal(parseTcp(b, 34, 20), 'bad_data_offset', `data offset ${doff}`);
  }
  // the fuzzed heap-overflow frame has only 12 bytes of TCP
  t.equal(parseTcp(HEAP_OVERFLOW, 34, HEAP_OVERFLOW.length - 34), 'truncated', 'tcp_header_heapoverflow: 12 bytes');
  // the snapped RST: the header is whole, only the payload is short by one byte
  const r = parseTcp(SNAPPED_RST, 34, SNAPPED_RST.length - 34) as TcpRepr;
  t.strictSame([r.srcPort, r.dstPort, r.seq, r.ack, r.flags, r.window], [80, 52875, 1617159969, 1936660873, TCP_RST | TCP_ACKF, 5785]);
  t.equal(SNAPPED_RST.length - 34 - r.headerLen, 57, '57 of 58 payload bytes captured');
});

t.test('malformed and unusual options', async (t) => {
  const opts = (s: string): TcpOptions => { const b = hex(s); return parseTcpOptions(b, 0, b.length); };
  t.strictSame(opts(''), { kinds: [] }, 'none');
  t.strictSame(opts('0000 0000'), { kinds: [] }, 'EOL only');
  t.strictSame(opts('0204 05b4 0001 0303'), { kinds: [2], mss: 1460 }, 'EOL ends the list: what follows is padding');
  t.strictSame(opts('0101 0101'), { kinds: [1, 1, 1, 1] }, 'NOPs are listed, as tshark lists them');
  t.strictSame(opts('fe04 abcd 0204 05b4'), { kinds: [0xfe, 2], mss: 1460 }, 'an unknown kind is stepped over by its length');
  t.strictSame(opts('0203 0501'), { kinds: [2, 1] }, 'MSS with length 3: kind listed, no value, next option read');
  t.strictSame(opts('0304 0700'), { kinds: [3] }, 'WS with length 4: no value');
  t.strictSame(opts('0403 0001'), { kinds: [4, 1] }, 'SACK_PERM with length 3: not permitted');
  t.strictSame(opts('0201'), { kinds: [], malformed: true }, 'length 1');
  t.strictSame(opts('0200 0000'), { kinds: [], malformed: true }, 'length 0 (would loop forever if taken)');
  t.strictSame(opts('0101 0205'), { kinds: [1, 1], malformed: true }, 'MSS length runs past the header');
  t.strictSame(opts('0204 05b4 08'), { kinds: [2], mss: 1460, malformed: true }, 'a kind with no room for its length byte');
  t.strictSame(opts('080a 0000 0001 0000 0002 0103 030e'), { kinds: [8, 1, 3], tsval: 1, tsecr: 2, wscale: 14 });
  // SACK blocks (kind 5) are listed but not decoded
  t.strictSame(opts('0101 050a 0000 0001 0000 0002'), { kinds: [1, 1, 5] });
  // the bound is `end`, not the buffer: an option running past the header is malformed even if
  // the buffer continues (the payload must not be read as options)
  const b = hex('0101 0204 05b4');
  t.strictSame(parseTcpOptions(b, 0, 4), { kinds: [1, 1], malformed: true });

  // through parseTcp: a 24-byte header whose option claims 6 bytes
  const seg = Buffer.from(EIGHT_FLAGS.subarray(34));
  const withOpt = Buffer.concat([seg, hex('0206 05b4 0000 0000')]);
  withOpt[TCP_DOFF] = 0x60;
  const r = parseTcp(withOpt, 0, withOpt.length) as TcpRepr;
  t.equal(r.headerLen, 24);
  t.strictSame(r.options, { kinds: [], malformed: true });
});

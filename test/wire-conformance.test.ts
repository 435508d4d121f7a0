// Conformance of src/wire with tshark over every shared capture.
//
// For each /work/shared/pcaps/expect/<file>.json (generated from tshark 4.0.17 fields by the
// capture maintainers, see MANIFEST.md), read the capture with src/pcap, summarise every frame
// with test/helpers/dissect.ts (built only on the src/wire parsed forms) and check that our counts
// equal tshark's. Where our definition legitimately differs, the difference is listed in
// OUR_OWN with the reason and our own value is asserted instead: nothing is skipped silently.
//
// How the expect counts are defined (read off the JSON files, and checked against tshark where
// the files alone did not settle it):
// - tcp_syn is SYN set and ACK clear; tcp_synack is SYN and ACK set; tcp_rst / tcp_fin are the
//   RST / FIN bit whatever else is set. tcpdump-tcp_eight_lowest_weight_flags_set.pcap (all eight
//   flags) counts as 0 SYN, 1 SYN-ACK, 1 RST, 1 FIN.
// - vlan_frames and outer_vlan_tagged_frames are frames whose first type field is a VLAN TPID
//   (the two never differ in these files); outer_ethertype_counts keys that first type field, so
//   a QinQ frame counts under 0x88a8, not under the ethertype after the tags.
// - arp_* count by opcode; "gratuitous" is sender IP == target IP. tshark still decodes the opcode
//   of a cut-short ARP (arpscan-pkt-too-short.pcap: 8 of 28 bytes), see OUR_OWN.
// - ipv4_frames / tcp_frames count frames that carry that layer at all, including a TCP header
//   cut short by the capture (tcpdump-tcp_header_heapoverflow.pcap: 12 bytes of TCP is a TCP
//   frame, with no flags to count and no checksum to verify).
// - a checksum is "bad" only when it could be verified: a snapped segment is not counted bad
//   (tcpdump-tcp_rst_data-trunc.pcap), and IP checksums are verified on every fragment.
// - bad_tcp_checksum_frames covers IPv4 and IPv6; we do not parse IPv6, so for files with IPv6
//   frames we compare with the IPv4 subset of bad_checksum_frame_numbers (see below).

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCaptureFile, CaptureError, CaptureErrorCode } from '../src/pcap';
import { isVlanTpid, ETHERTYPE_IPV4 } from '../src/wire/ethernet';
import {
  dissect, describe, FrameSummary, arpOf, ipv4Of, tcpOf,
  isArpRequest, isArpReply, isArpGratuitous, isSyn, isSynAck, isRst, isFin,
} from './helpers/dissect';

const repoRoot = path.resolve(__dirname, '..', '..');
const PCAPS = path.join(repoRoot, '..', 'shared', 'pcaps');
const EXPECT = path.join(PCAPS, 'expect');

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;

interface SynEntry {
  frame: number; src: string; sport: number; dst: string; dport: number; dst_ip_port: string;
  options: { kinds: number[]; mss: number | null; wscale: number | null; sack_permitted: boolean; tsval: number | null };
}
interface Expect {
  file: string;
  readable_by_tshark: boolean;
  tshark_exit_code: number;
  tshark_error: string | null;
  capinfos: { encapsulation: string } | null;
  frames: number;
  truncated_frames: number;
  malformed_frames: number;
  vlan_frames: number;
  outer_vlan_tagged_frames: number;
  arp_requests: number;
  arp_gratuitous_requests: number;
  arp_replies: number;
  arp_gratuitous_replies: number;
  arp_other_opcode: number;
  ipv4_frames: number;
  ipv4_fragments: number;
  ipv6_frames: number;
  tcp_frames: number;
  tcp_syn: number;
  tcp_synack: number;
  tcp_rst: number;
  tcp_fin: number;
  bad_ip_checksum_frames: number;
  bad_tcp_checksum_frames: number;
  bad_checksum_frames: number;
  bad_checksum_frame_numbers: number[];
  outer_ethertype_counts: Record<string, number>;
  arp_request_target_ips: Record<string, number>;
  arp_request_list: Array<{ frame: number; sender_ip: string; target_ip: string }>;
  tcp_syn_dst_counts: Record<string, number>;
  tcp_syn_list: SynEntry[];
  tcp_syn_list_truncated: boolean;
}

/**
 * Counts where we assert our own value instead of tshark's, each with the reason.
 * Keyed by capture file, then by expect key.
 */
const OUR_OWN: Record<string, Record<string, { ours: unknown; why: string }>> = {
  'arpscan-pkt-too-short.pcap': {
    arp_replies: {
      ours: 0,
      why: 'the frame holds 8 of the 28 bytes of an Ethernet/IPv4 ARP packet (caplen == len, so the ' +
        'packet itself is short). tshark reads the opcode and counts a reply (and flags the frame ' +
        'Malformed); parseArp refuses anything shorter than 28 bytes, so the ARP responder can never ' +
        'act on it. We count it as malformed, as tshark does, but not as a reply.',
    },
  },
  'tcpdump-ipv6-bad-version.pcap': {
    malformed_frames: {
      ours: 0,
      why: 'the two malformed frames are IPv6 (ethertype 0x86dd) with version nibble 0; src/wire does ' +
        'not parse IPv6, so nothing in them can be malformed to us.',
    },
  },
};

/**
 * For captures with IPv6 frames: the IPv4 share of tshark's TCP counts, taken with tshark 4.0.17
 * and the expect options (-o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE
 * -o ip.defragment:FALSE -o tcp.desegment_tcp_streams:FALSE) and display filters
 * "ip && tcp", "ip && tcp.flags.syn==1 && tcp.flags.ack==0", "... syn==1 && ack==1",
 * "ip && tcp.flags.reset==1", "ip && tcp.flags.fin==1", "ip && tcp.checksum.status==0".
 */
const IPV4_TCP_SHARE: Record<string, { tcp_frames: number; tcp_syn: number; tcp_synack: number; tcp_rst: number; tcp_fin: number; bad_tcp_checksum_frames: number }> = {
  'cs-http_ip4and6.pcapng': { tcp_frames: 10, tcp_syn: 1, tcp_synack: 1, tcp_rst: 0, tcp_fin: 2, bad_tcp_checksum_frames: 4 },
  'packetnet-ipv6_http.pcap': { tcp_frames: 0, tcp_syn: 0, tcp_synack: 0, tcp_rst: 0, tcp_fin: 0, bad_tcp_checksum_frames: 0 },
  'tcpdump-ipv6-bad-version.pcap': { tcp_frames: 0, tcp_syn: 0, tcp_synack: 0, tcp_rst: 0, tcp_fin: 0, bad_tcp_checksum_frames: 0 },
};

function hex4(n: number): string {
  return '0x' + n.toString(16).padStart(4, '0');
}
function countBy<T>(items: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of items) { const k = key(x); out[k] = (out[k] ?? 0) + 1; }
  return out;
}
/** Sorted copy, so that key order does not matter to t.strictSame. */
function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface Dissected { frame: number; s: FrameSummary; }

function synEntry(d: Dissected): SynEntry {
  const ip = ipv4Of(d.s)!.repr, tcp = tcpOf(d.s)!.repr, o = tcp.options;
  return {
    frame: d.frame, src: ip.src, sport: tcp.srcPort, dst: ip.dst, dport: tcp.dstPort, dst_ip_port: `${ip.dst}:${tcp.dstPort}`,
    options: {
      kinds: o.kinds, mss: o.mss ?? null, wscale: o.wscale ?? null, sack_permitted: o.sackPermitted === true, tsval: o.tsval ?? null,
    },
  };
}

const expectFiles = fs.readdirSync(EXPECT).filter((f) => f.endsWith('.json')).sort();

t.test('every shared capture has an expect file, and there are some', async (t) => {
  const captures = fs.readdirSync(PCAPS).filter((f) => f !== 'MANIFEST.md' && f !== 'expect' && !f.startsWith('.')).sort();
  t.ok(captures.length >= 20, `${captures.length} captures`);
  t.strictSame(expectFiles.map((f) => f.replace(/\.json$/, '')), captures);
});

for (const jf of expectFiles) {
  const exp = JSON.parse(fs.readFileSync(path.join(EXPECT, jf), 'utf8')) as Expect;
  const file = path.join(PCAPS, exp.file);

  t.test(exp.file, async (t) => {
    if (!exp.readable_by_tshark) {
      // Out of the comparison's scope (no counts to compare): tshark refuses the file, and so must we.
      let err: unknown = null;
      try { readCaptureFile(file); } catch (e) { err = e; }
      t.ok(err instanceof CaptureError, `tshark refuses it (${exp.tshark_error}); our reader must throw a CaptureError`);
      t.equal((err as CaptureError).code, CaptureErrorCode.NOT_A_CAPTURE);
      return;
    }

    // tshark reads the complete frames of a file that is cut short and exits 2
    const stoppedEarly = exp.tshark_exit_code !== 0;
    if (stoppedEarly) t.match(exp.tshark_error ?? '', /cut short/, 'tshark stopped early because the file is cut short');
    const cap = readCaptureFile(file, { allowTruncated: stoppedEarly });
    t.equal(cap.truncatedAt !== undefined, stoppedEarly, 'we stop early exactly where tshark does');
    t.equal(cap.frames.length, exp.frames, 'frames');
    t.equal(cap.frames.filter((f) => f.data.length < f.origLen).length, exp.truncated_frames, 'truncated_frames (caplen < len)');
    t.strictSame(cap.frames.map((f) => f.index), cap.frames.map((_, i) => i + 1), 'frames numbered from 1 as tshark numbers them');

    if (cap.frames.some((f) => f.linkType !== LINKTYPE_ETHERNET)) {
      // Only the Linux cooked capture is not Ethernet. src/wire has no SLL header parser, so for
      // this file we check the link type and the frame count (above) and nothing per frame.
      t.equal(exp.file, 'tcpdump-tcp-handshake-nano.pcap', 'the only non-Ethernet capture');
      t.equal(exp.capinfos?.encapsulation, 'Linux cooked-mode capture v1');
      t.equal(cap.linkType, LINKTYPE_LINUX_SLL, 'link type 113');
      t.ok(cap.frames.every((f) => f.linkType === LINKTYPE_LINUX_SLL), 'every frame is SLL');
      return;
    }
    t.equal(exp.capinfos?.encapsulation, 'Ethernet');

    const all: Dissected[] = cap.frames.map((f) => ({ frame: f.index, s: dissect(f.data, f.origLen) }));
    const where = (pred: (s: FrameSummary) => boolean): Dissected[] => all.filter((d) => pred(d.s));
    const n = (pred: (s: FrameSummary) => boolean): number => where(pred).length;

    const arpRequests = where(isArpRequest);
    const ipv4Frames = new Set(where((s) => s.etherType === ETHERTYPE_IPV4).map((d) => d.frame));
    const syns = where((s) => ipv4Of(s) !== null && isSyn(s));
    const hasIpv6 = exp.ipv6_frames > 0 || (exp.outer_ethertype_counts['0x86dd'] ?? 0) > 0;

    // Frames with a bad IPv4 header checksum or a bad TCP checksum: tshark lists the frame
    // numbers of both kinds together in bad_checksum_frame_numbers (IPv4 and IPv6 frames alike).
    const ourBad = where((s) => (ipv4Of(s) !== null && !ipv4Of(s)!.repr.checksumOk) || tcpOf(s)?.checksum === 'bad').map((d) => d.frame);
    const expBadIpv4 = exp.bad_checksum_frame_numbers.filter((f) => ipv4Frames.has(f));

    // bad_tcp_checksum_frames, IPv4 only: we do not parse IPv6, so where the file has IPv6 frames
    // the expected value is the IPv4 subset of bad_checksum_frame_numbers, which is all TCP when
    // the file has no bad IP checksums (true of every file with IPv6 here; asserted).
    let expBadTcpIpv4 = exp.bad_tcp_checksum_frames;
    if (hasIpv6) {
      t.equal(exp.bad_ip_checksum_frames, 0, 'IPv6 file without bad IP checksums: the IPv4 subset of the list is all TCP');
      expBadTcpIpv4 = expBadIpv4.length;
    }

    const ours: Record<string, unknown> = {
      malformed_frames: n((s) => s.malformed.length > 0),
      vlan_frames: n((s) => s.vlanCount > 0),
      outer_vlan_tagged_frames: n((s) => s.outerEtherType !== null && isVlanTpid(s.outerEtherType)),
      outer_ethertype_counts: sorted(countBy(all, (d) => (d.s.outerEtherType === null ? 'none' : hex4(d.s.outerEtherType)))),
      arp_requests: arpRequests.length,
      arp_gratuitous_requests: n((s) => isArpRequest(s) && isArpGratuitous(s)),
      arp_replies: n(isArpReply),
      arp_gratuitous_replies: n((s) => isArpReply(s) && isArpGratuitous(s)),
      arp_other_opcode: n((s) => arpOf(s) !== null && !isArpRequest(s) && !isArpReply(s)),
      arp_request_list: arpRequests.map((d) => ({ frame: d.frame, sender_ip: arpOf(d.s)!.senderIp, target_ip: arpOf(d.s)!.targetIp })),
      arp_request_target_ips: sorted(countBy(arpRequests, (d) => arpOf(d.s)!.targetIp)),
      ipv4_frames: ipv4Frames.size,
      ipv4_fragments: n((s) => ipv4Of(s)?.fragment === true),
      tcp_frames: n((s) => ipv4Of(s) !== null && s.tcp !== null),
      tcp_syn: n((s) => ipv4Of(s) !== null && isSyn(s)),
      tcp_synack: n((s) => ipv4Of(s) !== null && isSynAck(s)),
      tcp_rst: n((s) => ipv4Of(s) !== null && isRst(s)),
      tcp_fin: n((s) => ipv4Of(s) !== null && isFin(s)),
      bad_ip_checksum_frames: n((s) => ipv4Of(s) !== null && !ipv4Of(s)!.repr.checksumOk),
      bad_tcp_checksum_frames: n((s) => tcpOf(s)?.checksum === 'bad'),
      bad_checksum_frame_numbers: ourBad,
      tcp_syn_dst_counts: sorted(countBy(syns, (d) => synEntry(d).dst_ip_port)),
    };

    // tshark's values, restricted to IPv4 where the key covers IPv6 too
    const v6key = (k: string): boolean => k.startsWith('[');
    const theirs: Record<string, unknown> = {
      malformed_frames: exp.malformed_frames,
      vlan_frames: exp.vlan_frames,
      outer_vlan_tagged_frames: exp.outer_vlan_tagged_frames,
      outer_ethertype_counts: sorted(exp.outer_ethertype_counts),
      arp_requests: exp.arp_requests,
      arp_gratuitous_requests: exp.arp_gratuitous_requests,
      arp_replies: exp.arp_replies,
      arp_gratuitous_replies: exp.arp_gratuitous_replies,
      arp_other_opcode: exp.arp_other_opcode,
      arp_request_list: exp.arp_request_list,
      arp_request_target_ips: sorted(exp.arp_request_target_ips),
      ipv4_frames: exp.ipv4_frames,
      ipv4_fragments: exp.ipv4_fragments,
      // for files with IPv6 these five are replaced by the IPv4 share below
      tcp_frames: exp.tcp_frames,
      tcp_syn: exp.tcp_syn,
      tcp_synack: exp.tcp_synack,
      tcp_rst: exp.tcp_rst,
      tcp_fin: exp.tcp_fin,
      bad_ip_checksum_frames: exp.bad_ip_checksum_frames,
      bad_tcp_checksum_frames: expBadTcpIpv4,
      bad_checksum_frame_numbers: expBadIpv4,
      tcp_syn_dst_counts: sorted(Object.fromEntries(Object.entries(exp.tcp_syn_dst_counts).filter(([k]) => !v6key(k)))),
    };
    if (hasIpv6) {
      // tshark's tcp_* counts include TCP over IPv6, which we do not parse: compare with the IPv4
      // share, from IPV4_TCP_SHARE (tshark display filters over the same file, see there)
      const share = IPV4_TCP_SHARE[exp.file];
      t.ok(share, 'a file with IPv6 frames needs its IPv4 share of the TCP counts in IPV4_TCP_SHARE');
      if (!share) return;
      for (const k of ['tcp_frames', 'tcp_syn', 'tcp_synack', 'tcp_rst', 'tcp_fin'] as const) {
        t.ok(share[k] <= exp[k], `${k}: the IPv4 share ${share[k]} is part of tshark's ${exp[k]}`);
        theirs[k] = share[k];
      }
      // the SYN share agrees with the IPv4 entries of tcp_syn_dst_counts
      t.equal(share.tcp_syn, Object.entries(exp.tcp_syn_dst_counts).filter(([k]) => !v6key(k)).reduce((a, [, v]) => a + v, 0));
      t.equal(share.bad_tcp_checksum_frames, expBadTcpIpv4, 'and the bad TCP checksum share agrees with the frame-number list');
    }

    for (const key of Object.keys(ours)) {
      const own = OUR_OWN[exp.file]?.[key];
      if (own) {
        t.strictSame(ours[key], own.ours, `${key}: ours ${JSON.stringify(own.ours)}, tshark ${JSON.stringify(theirs[key])}: ${own.why}`);
        t.notSame(theirs[key], own.ours, `${key}: the documented difference from tshark still exists`);
      } else {
        t.strictSame(ours[key], theirs[key], key);
      }
    }

    // SYN options, IPv4 SYNs only. When tshark's list is cut (tcp_syn_list_truncated, 50 entries)
    // compare the SYNs up to the last frame it lists.
    const expSyns = exp.tcp_syn_list.filter((e) => !e.src.includes(':'));
    const last = exp.tcp_syn_list_truncated ? Math.max(...exp.tcp_syn_list.map((e) => e.frame)) : Infinity;
    t.strictSame(syns.filter((d) => d.frame <= last).map(synEntry), expSyns, `tcp_syn_list (${expSyns.length} IPv4 SYNs)`);

    // On failure, say which frames we took apart how.
    if (!t.passing()) for (const d of all) t.comment(`#${d.frame} ${describe(d.s)}`);
  });
}

// ICMP for IPv4 (RFC 792). Offsets from the start of the ICMP header (l4).
//
//  0      1      2             4                             8
//  +------+------+-------------+-----------------------------+------------------------------------
//  | type | code | checksum    | echo: identifier, sequence  | echo: data, sent back as it came
//  |      |      |             | type 3: unused, next-hop MTU| errors: the offending datagram's IP
//  |      |      |             |   (RFC 1191 §4, code 4)     |   header and at least the first 8
//  |      |      |             | type 12: pointer, unused    |   bytes of its payload (RFC 792;
//  +------+------+-------------+-----------------------------+   RFC 1812 §4.3.2.3: up to 576 in all)
//
// The checksum covers the whole ICMP message (no pseudo-header). An error's quote starts at
// ICMP_QUOTE; for a TCP segment its first 8 bytes hold the ports and the sequence number, so a
// flow can be found from a minimal quote; the quoted TCP checksum (bytes 16-17) is there only when
// the sender quoted more (Linux quotes as much as fits in 576 bytes).

import { u16, u32, setU16, setU32 } from './bytes';
import { checksum, fold, sum16 } from './checksum';
import { ipHeaderLen, ipVersion, IP_MIN_HEADER_LEN, IP_FLAGS_FRAG, IP_FRAG_OFFSET_MASK, IP_PROTO, parseIpv4Header, Ipv4Repr } from './ipv4';

export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CSUM = 2;
/** Echo request/reply: identifier and sequence number. */
export const ICMP_ECHO_ID = 4;
export const ICMP_ECHO_SEQ = 6;
/** Destination unreachable, code 4 (fragmentation needed and DF set): the next-hop MTU (RFC 1191 §4). */
export const ICMP_NEXT_HOP_MTU = 6;
/** Parameter problem: the octet of the quoted datagram where the problem is. */
export const ICMP_POINTER = 4;
export const ICMP_HEADER_LEN = 8;
/** Where an error message's quoted IP header starts. */
export const ICMP_QUOTE = 8;
/** Bytes of the quoted datagram's payload every error carries at least (RFC 792). */
export const ICMP_QUOTE_MIN_PAYLOAD = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ROUTER_SOLICIT = 10;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;

/** Destination unreachable codes (RFC 792, RFC 1191, RFC 1812 §5.2.7.1). */
export const ICMP_UNREACH_NET = 0;
export const ICMP_UNREACH_HOST = 1;
export const ICMP_UNREACH_PROTOCOL = 2;
export const ICMP_UNREACH_PORT = 3;
export const ICMP_UNREACH_FRAG_NEEDED = 4;

/**
 * The error messages vipgate carries to the end of a flow: destination unreachable (PMTUD's
 * "fragmentation needed" among them), time exceeded and parameter problem. Source quench is
 * deprecated (RFC 6633) and a redirect is advice to the host that sent the packet, not to a
 * backend behind it, so neither is carried.
 */
export function icmpIsFlowError(type: number): boolean {
  return type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED || type === ICMP_PARAM_PROBLEM;
}

// ---- check once ----

export const ICMP_OK = 0;
/** Shorter than the 8-byte ICMP header. */
export const ICMP_TRUNCATED = 1;
/** An error message whose quote is not an IPv4 header (version 4, IHL >= 5) and 8 bytes after it. */
export const ICMP_BAD_QUOTE = 2;

/**
 * Check the `len`-byte ICMP message at l4 (len from the IP total length; the caller checked that
 * many bytes are in the buffer). After ICMP_OK the header accessors can be trusted, and for an
 * error type (icmpIsFlowError) so can the quote accessors: the quoted IP header and the 8 bytes
 * after it are in hand. The checksum is a separate call (icmpChecksumOk): it reads every byte.
 */
export function icmpCheck(buf: Uint8Array, l4: number, len: number): number {
  if (len < ICMP_HEADER_LEN) return ICMP_TRUNCATED;
  if (!icmpIsFlowError(buf[l4 + ICMP_TYPE]!)) return ICMP_OK;
  const q = l4 + ICMP_QUOTE;
  if (len - ICMP_QUOTE < IP_MIN_HEADER_LEN) return ICMP_BAD_QUOTE;
  const qihl = ipHeaderLen(buf, q);
  if (ipVersion(buf, q) !== 4 || qihl < IP_MIN_HEADER_LEN) return ICMP_BAD_QUOTE;
  if (len - ICMP_QUOTE < qihl + ICMP_QUOTE_MIN_PAYLOAD) return ICMP_BAD_QUOTE;
  return ICMP_OK;
}

/** True when the checksum over the whole `len`-byte message verifies. */
export function icmpChecksumOk(buf: Uint8Array, l4: number, len: number): boolean {
  return fold(sum16(buf, l4, len)) === 0xffff;
}

export function icmpType(buf: Uint8Array, l4: number): number { return buf[l4 + ICMP_TYPE]!; }
export function icmpCode(buf: Uint8Array, l4: number): number { return buf[l4 + ICMP_CODE]!; }
export function icmpCsum(buf: Uint8Array, l4: number): number { return u16(buf, l4 + ICMP_CSUM); }
export function icmpEchoId(buf: Uint8Array, l4: number): number { return u16(buf, l4 + ICMP_ECHO_ID); }
export function icmpEchoSeq(buf: Uint8Array, l4: number): number { return u16(buf, l4 + ICMP_ECHO_SEQ); }
export function icmpNextHopMtu(buf: Uint8Array, l4: number): number { return u16(buf, l4 + ICMP_NEXT_HOP_MTU); }

// Quote accessors (after icmpCheck said ICMP_OK for an error type).
/** Offset of the quoted IP header. */
export function icmpQuoteL3(l4: number): number { return l4 + ICMP_QUOTE; }
/** Offset of the quoted datagram's payload (its L4 header). */
export function icmpQuoteL4(buf: Uint8Array, l4: number): number { return l4 + ICMP_QUOTE + ipHeaderLen(buf, l4 + ICMP_QUOTE); }
/** The quoted datagram's protocol. */
export function icmpQuoteProto(buf: Uint8Array, l4: number): number { return buf[l4 + ICMP_QUOTE + IP_PROTO]!; }
/** True when the quoted datagram is a later fragment: its payload is not the L4 header. */
export function icmpQuoteIsLaterFragment(buf: Uint8Array, l4: number): boolean {
  return (u16(buf, l4 + ICMP_QUOTE + IP_FLAGS_FRAG) & IP_FRAG_OFFSET_MASK) !== 0;
}
/** Bytes of the quoted payload present in a `len`-byte message. */
export function icmpQuotePayloadLen(buf: Uint8Array, l4: number, len: number): number {
  return len - ICMP_QUOTE - ipHeaderLen(buf, l4 + ICMP_QUOTE);
}

// ---- parsed form ----

export interface IcmpQuote {
  ip: Ipv4Repr;
  /** The quoted payload's first bytes (at least 8): for TCP and UDP, source and destination port first. */
  payload: Uint8Array;
  srcPort: number;
  dstPort: number;
}

export interface IcmpRepr {
  type: number;
  code: number;
  checksum: number;
  checksumOk: boolean;
  /** Bytes 4..7: echo identifier and sequence, or unused + next-hop MTU, or the pointer. */
  rest: number;
  /** Echo request or reply. */
  id?: number;
  seq?: number;
  /** Destination unreachable, fragmentation needed. */
  nextHopMtu?: number;
  /** Error messages: the quoted datagram. */
  quote?: IcmpQuote;
  /** Everything after the 8-byte header (the echo data, or the quote as bytes). */
  data: Uint8Array;
}

export type IcmpParseError = 'truncated' | 'bad_quote';

/** Parse the `len`-byte ICMP message at l4; returns an error name instead of throwing. */
export function parseIcmp(buf: Uint8Array, l4: number, len: number): IcmpRepr | IcmpParseError {
  const chk = icmpCheck(buf, l4, len);
  if (chk === ICMP_TRUNCATED) return 'truncated';
  if (chk === ICMP_BAD_QUOTE) return 'bad_quote';
  const type = icmpType(buf, l4), code = icmpCode(buf, l4);
  const r: IcmpRepr = {
    type, code, checksum: icmpCsum(buf, l4), checksumOk: icmpChecksumOk(buf, l4, len),
    rest: u32(buf, l4 + 4), data: Uint8Array.from(buf.subarray(l4 + ICMP_HEADER_LEN, l4 + len)),
  };
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    r.id = icmpEchoId(buf, l4);
    r.seq = icmpEchoSeq(buf, l4);
  }
  if (type === ICMP_DEST_UNREACH && code === ICMP_UNREACH_FRAG_NEEDED) r.nextHopMtu = icmpNextHopMtu(buf, l4);
  if (icmpIsFlowError(type)) {
    const ip = parseIpv4Header(buf, icmpQuoteL3(l4), len - ICMP_QUOTE);
    if (typeof ip === 'string') return 'bad_quote'; // icmpCheck ruled this out; kept for the type
    const ql4 = icmpQuoteL4(buf, l4);
    r.quote = { ip, payload: Uint8Array.from(buf.subarray(ql4, l4 + len)), srcPort: u16(buf, ql4), dstPort: u16(buf, ql4 + 2) };
  }
  return r;
}

export interface IcmpEmit {
  type: number;
  code?: number;
  /** Echo: identifier and sequence number. */
  id?: number;
  seq?: number;
  /** Fragmentation needed: the next-hop MTU. */
  nextHopMtu?: number;
  /** Bytes 4..7 as one number when none of the above fits (e.g. a parameter problem's pointer << 24). */
  rest?: number;
  /** What follows the header: echo data, or for an error the quoted IP datagram (header first). */
  data?: Uint8Array;
}

/** Write an ICMP message with a correct checksum; returns its length (8 + data). */
export function emitIcmp(r: IcmpEmit, buf: Uint8Array, l4: number): number {
  const data = r.data ?? new Uint8Array(0);
  buf[l4 + ICMP_TYPE] = r.type;
  buf[l4 + ICMP_CODE] = r.code ?? 0;
  setU16(buf, l4 + ICMP_CSUM, 0);
  if (r.id !== undefined || r.seq !== undefined) {
    setU16(buf, l4 + ICMP_ECHO_ID, r.id ?? 0);
    setU16(buf, l4 + ICMP_ECHO_SEQ, r.seq ?? 0);
  } else if (r.nextHopMtu !== undefined) {
    setU16(buf, l4 + 4, 0);
    setU16(buf, l4 + ICMP_NEXT_HOP_MTU, r.nextHopMtu);
  } else {
    setU32(buf, l4 + 4, r.rest ?? 0);
  }
  buf.set(data, l4 + ICMP_HEADER_LEN);
  const len = ICMP_HEADER_LEN + data.length;
  setU16(buf, l4 + ICMP_CSUM, checksum(buf, l4, len));
  return len;
}

/** tcpdump's name for a type (for printing). */
export function icmpTypeText(type: number): string {
  switch (type) {
    case ICMP_ECHO_REPLY: return 'echo reply';
    case ICMP_DEST_UNREACH: return 'unreachable';
    case ICMP_SOURCE_QUENCH: return 'source quench';
    case ICMP_REDIRECT: return 'redirect';
    case ICMP_ECHO_REQUEST: return 'echo request';
    case ICMP_ROUTER_SOLICIT: return 'router solicitation';
    case ICMP_TIME_EXCEEDED: return 'time exceeded';
    case ICMP_PARAM_PROBLEM: return 'parameter problem';
    default: return `type-#${type}`;
  }
}

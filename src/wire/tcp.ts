// TCP header (RFC 9293 §3.1). Offsets from the start of the TCP header (l4).
//
//  0             2             4                     8                     12    13    14      16      18      20
//  +-------------+-------------+---------------------+---------------------+-----+-----+-------+-------+-------+----
//  | source port | dest port   | sequence number     | acknowledgment num  |off  |flags| window| csum  | urg   | options
//  +-------------+-------------+---------------------+---------------------+-----+-----+-------+-------+-------+----

import { u16, u32, setU16, setU32 } from './bytes';
import { finish, pseudoHeaderSum, sum16 } from './checksum';
import { IPPROTO_TCP } from './ipv4';

export const TCP_SPORT = 0;
export const TCP_DPORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
export const TCP_DOFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CSUM = 16;
export const TCP_URG = 18;
export const TCP_MIN_HEADER_LEN = 20;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACKF = 0x10;
export const TCP_URGF = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;

export function tcpSport(buf: Uint8Array, l4: number): number { return u16(buf, l4 + TCP_SPORT); }
export function tcpDport(buf: Uint8Array, l4: number): number { return u16(buf, l4 + TCP_DPORT); }
/** Header length in bytes (data offset × 4). */
export function tcpHeaderLen(buf: Uint8Array, l4: number): number { return (buf[l4 + TCP_DOFF]! >>> 4) << 2; }
/** The eight flag bits CWR..FIN (the NS/AE bit in byte 12 is not included). */
export function tcpFlags(buf: Uint8Array, l4: number): number { return buf[l4 + TCP_FLAGS]!; }
export function tcpCsum(buf: Uint8Array, l4: number): number { return u16(buf, l4 + TCP_CSUM); }
export function setTcpCsum(buf: Uint8Array, l4: number, v: number): void { setU16(buf, l4 + TCP_CSUM, v); }

/** Full TCP checksum for a segment of `l4len` bytes at l4 (header + payload) between src and dst. */
export function tcpChecksum(buf: Uint8Array, l4: number, l4len: number, src: number, dst: number): number {
  const saved = u16(buf, l4 + TCP_CSUM);
  setU16(buf, l4 + TCP_CSUM, 0);
  const c = finish(sum16(buf, l4, l4len, pseudoHeaderSum(src, dst, IPPROTO_TCP, l4len)));
  setU16(buf, l4 + TCP_CSUM, saved);
  return c;
}

/** True when the segment's checksum verifies. */
export function tcpChecksumOk(buf: Uint8Array, l4: number, l4len: number, src: number, dst: number): boolean {
  return tcpChecksum(buf, l4, l4len, src, dst) === tcpCsum(buf, l4);
}

// ---- parsed form ----

export interface TcpOptions {
  /** Option kinds in the order they appear, NOPs included, EOL excluded (as tshark lists them). */
  kinds: number[];
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  tsval?: number;
  tsecr?: number;
  /** True when an option's length runs past the header or is invalid. */
  malformed?: boolean;
}

export interface TcpRepr {
  srcPort: number; dstPort: number; seq: number; ack: number;
  headerLen: number; flags: number; window: number; checksum: number; urgent: number;
  options: TcpOptions;
}

export type TcpParseError = 'truncated' | 'bad_data_offset';

export function parseTcpOptions(buf: Uint8Array, start: number, end: number): TcpOptions {
  const o: TcpOptions = { kinds: [] };
  let p = start;
  while (p < end) {
    const kind = buf[p]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) { o.kinds.push(kind); p++; continue; }
    if (p + 1 >= end) { o.malformed = true; break; }
    const len = buf[p + 1]!;
    if (len < 2 || p + len > end) { o.malformed = true; break; }
    o.kinds.push(kind);
    if (kind === TCPOPT_MSS && len === 4) o.mss = u16(buf, p + 2);
    else if (kind === TCPOPT_WSCALE && len === 3) o.wscale = buf[p + 2]!;
    else if (kind === TCPOPT_SACK_PERM && len === 2) o.sackPermitted = true;
    else if (kind === TCPOPT_TIMESTAMP && len === 10) { o.tsval = u32(buf, p + 2); o.tsecr = u32(buf, p + 6); }
    p += len;
  }
  return o;
}

/** Parse the TCP header at l4 given `avail` captured bytes from l4. */
export function parseTcp(buf: Uint8Array, l4: number, avail: number): TcpRepr | TcpParseError {
  if (avail < TCP_MIN_HEADER_LEN) return 'truncated';
  const hl = tcpHeaderLen(buf, l4);
  if (hl < TCP_MIN_HEADER_LEN) return 'bad_data_offset';
  if (avail < hl) return 'truncated';
  return {
    srcPort: tcpSport(buf, l4), dstPort: tcpDport(buf, l4), seq: u32(buf, l4 + TCP_SEQ), ack: u32(buf, l4 + TCP_ACK),
    headerLen: hl, flags: tcpFlags(buf, l4), window: u16(buf, l4 + TCP_WINDOW), checksum: tcpCsum(buf, l4),
    urgent: u16(buf, l4 + TCP_URG), options: parseTcpOptions(buf, l4 + TCP_MIN_HEADER_LEN, l4 + hl),
  };
}

export function tcpFlagsText(f: number): string {
  const names: Array<[number, string]> = [[TCP_SYN, 'S'], [TCP_FIN, 'F'], [TCP_RST, 'R'], [TCP_PSH, 'P'], [TCP_ACKF, '.'], [TCP_URGF, 'U'], [TCP_ECE, 'E'], [TCP_CWR, 'W']];
  let s = '';
  for (const [bit, n] of names) if (f & bit) s += n;
  return s || 'none';
}

export interface TcpEmit {
  srcPort: number; dstPort: number; seq?: number; ack?: number; flags: number; window?: number; urgent?: number;
  options?: { mss?: number; wscale?: number; sackPermitted?: boolean; tsval?: number; tsecr?: number };
}

/**
 * Write a TCP header (checksum left 0: call tcpChecksum once the payload and IP addresses are in place).
 * Options are laid out as Linux does: MSS, SACK_PERM+TS (or NOP,NOP,TS), NOP+WS. Returns the header length.
 */
export function emitTcp(r: TcpEmit, buf: Uint8Array, l4: number): number {
  setU16(buf, l4 + TCP_SPORT, r.srcPort);
  setU16(buf, l4 + TCP_DPORT, r.dstPort);
  setU32(buf, l4 + TCP_SEQ, r.seq ?? 0);
  setU32(buf, l4 + TCP_ACK, r.ack ?? 0);
  buf[l4 + TCP_FLAGS] = r.flags & 0xff;
  setU16(buf, l4 + TCP_WINDOW, r.window ?? 65535);
  setU16(buf, l4 + TCP_CSUM, 0);
  setU16(buf, l4 + TCP_URG, r.urgent ?? 0);
  let p = l4 + TCP_MIN_HEADER_LEN;
  const o = r.options ?? {};
  if (o.mss !== undefined) { buf[p] = TCPOPT_MSS; buf[p + 1] = 4; setU16(buf, p + 2, o.mss); p += 4; }
  if (o.tsval !== undefined) {
    if (o.sackPermitted) { buf[p] = TCPOPT_SACK_PERM; buf[p + 1] = 2; } else { buf[p] = TCPOPT_NOP; buf[p + 1] = TCPOPT_NOP; }
    p += 2;
    buf[p] = TCPOPT_TIMESTAMP; buf[p + 1] = 10; setU32(buf, p + 2, o.tsval); setU32(buf, p + 6, o.tsecr ?? 0); p += 10;
  } else if (o.sackPermitted) {
    buf[p] = TCPOPT_NOP; buf[p + 1] = TCPOPT_NOP; buf[p + 2] = TCPOPT_SACK_PERM; buf[p + 3] = 2; p += 4;
  }
  if (o.wscale !== undefined) { buf[p] = TCPOPT_NOP; buf[p + 1] = TCPOPT_WSCALE; buf[p + 2] = 3; buf[p + 3] = o.wscale; p += 4; }
  const hl = p - l4;
  buf[l4 + TCP_DOFF] = (hl >>> 2) << 4;
  return hl;
}

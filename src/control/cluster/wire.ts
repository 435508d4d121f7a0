// The cluster's datagrams (issue 11; docs: /work/prompts/cluster-design.md section 2): one UDP
// datagram = one message, authenticated with HMAC-SHA256 under the shared cluster key, with a
// per-sender incarnation and sequence number so a replayed, forged or truncated message is
// refused before it can change anything.
//
//   0 u32 magic 0x5647434c ("VGCL" on the wire)   4 u8 version (1)   5 u8 type   6 u16 body length
//   8 u8 sender index (its rank in cluster.peers)  9..15 zero (reserved; a set byte is `malformed`)
//  16 f64 sender incarnation (ms since the epoch when the sender's cluster part started)
//  24 f64 seq (per incarnation, from 1, +1 per message of any type)
//  32 f64 sentAt (the sender's wall clock, ms)
//  40 body (body length bytes)
//  .. 32-byte HMAC-SHA256(key, bytes 0 .. 40 + body length): the last 32 bytes, nothing after it
//
// Byte order: the header and the framing of the bodies are big-endian (network order, so a
// capture shows "VGCL"); the 24-byte flow records inside MSG_FLOWS are little-endian, byte for
// byte the records of the journal and import rings (src/shm/flow-record.ts), so the supervisor
// moves them between ring and socket without converting them.
//
// Bodies:
//   MSG_HEARTBEAT        JSON (UTF-8), the Heartbeat below; unknown keys are ignored (so a newer
//                        peer may add some), every known one is validated.
//   MSG_FLOWS            u16 count, u16 flags (bit 0: part of a snapshot), count x 24-byte records,
//                        count 1..MAX_FLOWS_PER_DATAGRAM.
//   MSG_SNAPSHOT_REQUEST empty.
//   MSG_SNAPSHOT_END     f64 records sent in the snapshot.
//
// decode() checks, in order: the length, magic, version, type, body length, the sender index,
// then the HMAC (crypto.timingSafeEqual, before any body byte is parsed), then the body. What it
// cannot know alone — replays, old incarnations, clock skew — ReplayGuard checks, per sender, with
// the receiver's clock as a parameter. Neither ever throws on input bytes (see the fuzz test).
//
// Control plane only: this runs in the supervisor, never on the packet path.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { FLOW_WIRE_BYTES, R_OP, R_STATE, REPL_NEW, REPL_REFRESH } from '../../shm/flow-record';
import { FS_SYN, FS_CLOSING } from '../../dataplane/flows';
import { parseIpv4 } from '../../wire/addr';
import { VipgateError } from '../errors';

export {
  FLOW_WIRE_BYTES, REPL_NEW, REPL_ESTABLISHED, REPL_CLOSED, REPL_EXPIRED, REPL_REFRESH, REPL_OP_NAMES,
  R_OP, R_STATE, R_MAC, R_CLI, R_VIP, R_PORTS, R_BACKIP,
} from '../../shm/flow-record';

export const MAGIC = 0x5647434c;
export const VERSION = 1;
export const HEADER_BYTES = 40;
export const HMAC_BYTES = 32;
/** 1500-byte MTU - 20 (IPv4) - 8 (UDP): no IP fragmentation on an ordinary segment. */
export const MAX_DATAGRAM = 1472;
export const MAX_BODY = MAX_DATAGRAM - HEADER_BYTES - HMAC_BYTES;

export const MSG_HEARTBEAT = 1;
export const MSG_FLOWS = 2;
export const MSG_SNAPSHOT_REQUEST = 3;
export const MSG_SNAPSHOT_END = 4;
export type MsgType = typeof MSG_HEARTBEAT | typeof MSG_FLOWS | typeof MSG_SNAPSHOT_REQUEST | typeof MSG_SNAPSHOT_END;
export const MSG_NAMES = ['', 'heartbeat', 'flows', 'snapshot_request', 'snapshot_end'] as const;

/** The contract's figure (58 would fit: 40 + 4 + 58 x 24 + 32 = 1468); 55 leaves room for a
 *  bigger header in a later version without changing the batching. */
export const MAX_FLOWS_PER_DATAGRAM = 55;
export const FLOWS_HEAD_BYTES = 4;
export const FLOWS_FLAG_SNAPSHOT = 1;

/** A message whose sentAt is further than this from the receiver's clock is refused: it bounds
 *  how old a replay can be when the receiver restarted and forgot its windows. */
export const MAX_CLOCK_SKEW_MS = 10_000;
/** IPsec's anti-replay window (RFC 4303 section 3.4.3), in messages. */
export const REPLAY_WINDOW = 64;

export type RejectReason =
  | 'truncated' | 'bad_magic' | 'bad_version' | 'bad_type' | 'bad_length' | 'unknown_sender' | 'from_self'
  | 'bad_hmac' | 'replayed' | 'old_incarnation' | 'clock_skew' | 'malformed';
/** Every reason, in a fixed order: counters and metrics list them all, zero or not. */
export const REJECT_REASONS: readonly RejectReason[] = [
  'truncated', 'bad_magic', 'bad_version', 'bad_type', 'bad_length', 'unknown_sender', 'from_self',
  'bad_hmac', 'replayed', 'old_incarnation', 'clock_skew', 'malformed',
];

export interface Envelope {
  /** The sender's rank in cluster.peers. */
  sender: number;
  incarnation: number;
  seq: number;
  /** The sender's wall clock, ms. */
  sentAt: number;
}

export interface Load {
  /** Flows in its table now. */
  flows: number;
  /** Its flow table's capacity (flows.capacity). */
  capacity: number;
  /** Packets per second through its packet path. */
  pps: number;
  /** CPU its vipgate processes used over the last interval, in cores (1 = one core busy). */
  cpu: number;
}

export interface History {
  /** ms since the epoch when its vipgate started (its incarnation may be later). */
  startedAt: number;
  /** VIPs it has taken over since it started. */
  takeovers: number;
  /** Restarts of its peers it has seen. */
  peerRestartsSeen: number;
}

/** A heartbeat's body as sent (the JSON). */
export interface Heartbeat {
  load: Load;
  /** VIPs (and the nat gateway) it answers ARP for now, dotted quads. */
  owned: string[];
  /** It holds the flow state of every peer that is alive (it has had their snapshots). */
  synced: boolean;
  history: History;
  /** Backends its health checks see DOWN, dotted quads. */
  down: string[];
  /** Flow records it has sent to this receiver since its incarnation began (the lag figure). */
  sent: number;
}

/** A decoded heartbeat: the JSON, and its addresses parsed (unsigned 32-bit, like Config.vips). */
export interface DecodedHeartbeat extends Heartbeat {
  ownedIps: number[];
  downIps: number[];
}

export interface DecodedFlows {
  count: number;
  snapshot: boolean;
  /** A view into the datagram (count x FLOW_WIRE_BYTES): copy it out before the buffer is reused. */
  records: Uint8Array;
}

export type Decoded =
  | { ok: true; env: Envelope; type: MsgType; heartbeat?: DecodedHeartbeat; flows?: DecodedFlows; snapshotCount?: number }
  | { ok: false; reason: RejectReason };

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * One datagram: header, body, HMAC. Throws VipgateError 'ECLUSTER_MESSAGE' for what only a caller's
 * bug produces (a body over MAX_BODY, a bad envelope): nothing from the network reaches here.
 */
export function encode(type: MsgType, env: Envelope, body: Uint8Array, key: Uint8Array): Buffer {
  if (body.length > MAX_BODY) {
    throw new VipgateError('ECLUSTER_MESSAGE', `a ${MSG_NAMES[type] ?? type} body of ${body.length} bytes does not fit one ${MAX_DATAGRAM}-byte datagram (at most ${MAX_BODY})`);
  }
  if (!envelopeOk(env) || env.sender > 255) throw new VipgateError('ECLUSTER_MESSAGE', `bad envelope ${JSON.stringify(env)}`);
  const buf = Buffer.alloc(HEADER_BYTES + body.length + HMAC_BYTES);
  buf.writeUInt32BE(MAGIC, 0);
  buf[4] = VERSION;
  buf[5] = type;
  buf.writeUInt16BE(body.length, 6);
  buf[8] = env.sender;
  buf.writeDoubleBE(env.incarnation, 16);
  buf.writeDoubleBE(env.seq, 24);
  buf.writeDoubleBE(env.sentAt, 32);
  buf.set(body, HEADER_BYTES);
  const end = HEADER_BYTES + body.length;
  createHmac('sha256', key).update(buf.subarray(0, end)).digest().copy(buf, end);
  return buf;
}

/** A heartbeat's body; throws VipgateError 'ECLUSTER_MESSAGE' when it does not fit a datagram. */
export function heartbeatBody(hb: Heartbeat): Buffer {
  const { load, owned, synced, history, down, sent } = hb;
  const body = Buffer.from(JSON.stringify({ load, owned, synced, history, down, sent }), 'utf8');
  if (body.length > MAX_BODY) {
    throw new VipgateError('ECLUSTER_MESSAGE', `a heartbeat listing ${owned.length} owned VIPs and ${down.length} down backends is ${body.length} bytes, over the ${MAX_BODY} one datagram carries`);
  }
  return body;
}

/** A MSG_FLOWS body: `count` records from `records` at byte offset `at`. */
export function flowsBody(records: Uint8Array, at: number, count: number, snapshot: boolean): Buffer {
  if (!Number.isInteger(count) || count < 1 || count > MAX_FLOWS_PER_DATAGRAM) {
    throw new VipgateError('ECLUSTER_MESSAGE', `${count} flow records: a datagram carries 1..${MAX_FLOWS_PER_DATAGRAM}`);
  }
  const body = Buffer.alloc(FLOWS_HEAD_BYTES + count * FLOW_WIRE_BYTES);
  body.writeUInt16BE(count, 0);
  body.writeUInt16BE(snapshot ? FLOWS_FLAG_SNAPSHOT : 0, 2);
  body.set(records.subarray(at, at + count * FLOW_WIRE_BYTES), FLOWS_HEAD_BYTES);
  return body;
}

export function snapshotEndBody(count: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(count, 0);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function envelopeOk(env: Envelope): boolean {
  return Number.isInteger(env.sender) && env.sender >= 0 &&
    Number.isSafeInteger(env.incarnation) && env.incarnation > 0 &&
    Number.isSafeInteger(env.seq) && env.seq >= 1 &&
    Number.isFinite(env.sentAt) && env.sentAt > 0;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Check one datagram. `nPeers` is the length of cluster.peers, `selfIndex` the receiver's rank.
 * Never throws; a rejected datagram says why.
 */
export function decode(buf: Uint8Array, key: Uint8Array, nPeers: number, selfIndex: number): Decoded {
  const n = buf.length;
  if (n < HEADER_BYTES + HMAC_BYTES) return no('truncated');
  const dv = new DataView(buf.buffer, buf.byteOffset, n);
  if (dv.getUint32(0) !== MAGIC) return no('bad_magic');
  if (buf[4] !== VERSION) return no('bad_version');
  const type = buf[5]!;
  if (type < MSG_HEARTBEAT || type > MSG_SNAPSHOT_END) return no('bad_type');
  const bodyLen = dv.getUint16(6);
  const end = HEADER_BYTES + bodyLen;
  if (n < end + HMAC_BYTES) return no('truncated');
  if (n > end + HMAC_BYTES || bodyLen > MAX_BODY) return no('bad_length');
  const sender = buf[8]!;
  if (sender >= nPeers) return no('unknown_sender');
  if (sender === selfIndex) return no('from_self');
  const mac = createHmac('sha256', key).update(buf.subarray(0, end)).digest();
  if (!timingSafeEqual(mac, buf.subarray(end, end + HMAC_BYTES))) return no('bad_hmac');

  // Authenticated from here on: what is wrong now is a peer's bug or a version skew, not an attack.
  for (let i = 9; i < 16; i++) if (buf[i] !== 0) return no('malformed');
  const env: Envelope = { sender, incarnation: dv.getFloat64(16), seq: dv.getFloat64(24), sentAt: dv.getFloat64(32) };
  if (!envelopeOk(env)) return no('malformed');
  const body = buf.subarray(HEADER_BYTES, end);
  switch (type) {
    case MSG_HEARTBEAT: {
      const heartbeat = parseHeartbeat(body);
      return heartbeat ? { ok: true, env, type, heartbeat } : no('malformed');
    }
    case MSG_FLOWS: {
      if (bodyLen < FLOWS_HEAD_BYTES) return no('malformed');
      const count = dv.getUint16(HEADER_BYTES);
      const flags = dv.getUint16(HEADER_BYTES + 2);
      if (count < 1 || count > MAX_FLOWS_PER_DATAGRAM || bodyLen !== FLOWS_HEAD_BYTES + count * FLOW_WIRE_BYTES) return no('malformed');
      if ((flags & ~FLOWS_FLAG_SNAPSHOT) !== 0) return no('malformed');
      const records = body.subarray(FLOWS_HEAD_BYTES);
      for (let r = 0; r < count; r++) {
        const op = records[r * FLOW_WIRE_BYTES + R_OP]!, st = records[r * FLOW_WIRE_BYTES + R_STATE]!;
        if (op < REPL_NEW || op > REPL_REFRESH || st < FS_SYN || st > FS_CLOSING) return no('malformed');
      }
      return { ok: true, env, type, flows: { count, snapshot: (flags & FLOWS_FLAG_SNAPSHOT) !== 0, records } };
    }
    case MSG_SNAPSHOT_REQUEST:
      return bodyLen === 0 ? { ok: true, env, type } : no('malformed');
    default: {
      if (bodyLen !== 8) return no('malformed');
      const snapshotCount = dv.getFloat64(HEADER_BYTES);
      return Number.isSafeInteger(snapshotCount) && snapshotCount >= 0 ? { ok: true, env, type: MSG_SNAPSHOT_END, snapshotCount } : no('malformed');
    }
  }
}

function no(reason: RejectReason): Decoded {
  return { ok: false, reason };
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const rate = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= max;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function addresses(v: unknown): number[] | null {
  if (!Array.isArray(v)) return null;
  const out: number[] = [];
  for (const a of v) {
    const ip = typeof a === 'string' ? parseIpv4(a) : null;
    if (ip === null) return null;
    out.push(ip);
  }
  return out;
}

/** The heartbeat JSON, every known field checked (type and range), or null. */
export function parseHeartbeat(body: Uint8Array): DecodedHeartbeat | null {
  let j: unknown;
  try {
    j = JSON.parse(utf8.decode(body));
  } catch {
    return null;
  }
  if (!isObject(j)) return null;
  const { load, owned, synced, history, down, sent } = j;
  if (!isObject(load) || !count(load.flows) || !count(load.capacity) || !rate(load.pps, 1e12) || !rate(load.cpu, 4096)) return null;
  if (typeof synced !== 'boolean' || !count(sent)) return null;
  if (!isObject(history) || !count(history.startedAt) || !count(history.takeovers) || !count(history.peerRestartsSeen)) return null;
  const ownedIps = addresses(owned), downIps = addresses(down);
  if (ownedIps === null || downIps === null) return null;
  return {
    load: { flows: load.flows, capacity: load.capacity, pps: load.pps, cpu: load.cpu },
    owned: owned as string[], synced,
    history: { startedAt: history.startedAt, takeovers: history.takeovers, peerRestartsSeen: history.peerRestartsSeen },
    down: down as string[], sent, ownedIps, downIps,
  };
}

// ---------------------------------------------------------------------------------------------
// Replay guard

/** What the guard knows of one sender (for the API: incarnation, newest seq, clock skew). */
export interface SenderView {
  incarnation: number;
  highestSeq: number;
  /** receiver's clock - sender's sentAt of the last accepted message, ms (positive: it is behind). */
  skewMs: number;
  /** The same for the last message refused as clock_skew, or null: says by how much a peer's
   *  clock is off while its messages are refused (a figure only; it changes no decision). */
  refusedSkewMs: number | null;
}

interface SenderState {
  incarnation: number;
  highestSeq: number;
  skewMs: number;
  /** seq accepted at slot seq % REPLAY_WINDOW (0: none): a repeat finds itself there. */
  seen: Float64Array;
}

/**
 * Per sender: its newest incarnation and a 64-message sliding window over seq (RFC 4303 3.4.3):
 * a repeated seq, or one older than the window, is `replayed`; reordering inside the window is
 * accepted. A lower incarnation than the newest seen is `old_incarnation`; a higher one (the peer
 * restarted) starts a new window. sentAt further than MAX_CLOCK_SKEW_MS from `now` is
 * `clock_skew`. check() changes the guard's state only when it accepts (a refused message's skew
 * is kept apart, as a figure for the operator).
 */
export class ReplayGuard {
  private readonly senders = new Map<number, SenderState>();
  private readonly refusedSkew = new Map<number, number>();

  check(env: Envelope, now: number): RejectReason | null {
    const s = this.senders.get(env.sender);
    const fresh = s === undefined || env.incarnation > s.incarnation;
    if (s !== undefined && !fresh) {
      if (env.incarnation < s.incarnation) return 'old_incarnation';
      if (env.seq <= s.highestSeq - REPLAY_WINDOW || s.seen[env.seq % REPLAY_WINDOW] === env.seq) return 'replayed';
    }
    const skew = now - env.sentAt;
    if (!(Math.abs(skew) <= MAX_CLOCK_SKEW_MS)) {
      this.refusedSkew.set(env.sender, skew);
      return 'clock_skew';
    }
    this.refusedSkew.delete(env.sender);
    if (s === undefined || fresh) {
      const seen = new Float64Array(REPLAY_WINDOW);
      seen[env.seq % REPLAY_WINDOW] = env.seq;
      this.senders.set(env.sender, { incarnation: env.incarnation, highestSeq: env.seq, skewMs: skew, seen });
      return null;
    }
    s.seen[env.seq % REPLAY_WINDOW] = env.seq;
    if (env.seq > s.highestSeq) s.highestSeq = env.seq;
    s.skewMs = skew;
    return null;
  }

  /** What the guard knows of a sender, or null before its first accepted or skew-refused message. */
  view(sender: number): SenderView | null {
    const s = this.senders.get(sender);
    const refusedSkewMs = this.refusedSkew.get(sender) ?? null;
    if (s === undefined) return refusedSkewMs === null ? null : { incarnation: 0, highestSeq: 0, skewMs: 0, refusedSkewMs };
    return { incarnation: s.incarnation, highestSeq: s.highestSeq, skewMs: s.skewMs, refusedSkewMs };
  }
}

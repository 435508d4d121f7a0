// A single-producer single-consumer ring of 24-byte flow records (src/shm/flow-record.ts) over
// shared memory, for issue 11's replication: the journal (the packet worker writes its flows'
// changes, the supervisor reads them and sends them to the peers) and the imports (the
// supervisor writes the peers' records, the worker upserts them). Two processes, one writer and
// one reader each, no lock.
//
// Control words (Int32, 16 of them ahead of the records): head = records ever pushed, tail = records ever taken,
// both free-running and wrapping at 2^32 (head - tail, in 32-bit arithmetic, is what is
// readable); dropped = records refused because the ring was full. The producer writes a record,
// then publishes it with Atomics.store(head); the consumer reads up to Atomics.load(head), then
// gives the space back with Atomics.store(tail). A process killed between the two leaves the
// record unpublished (producer) or read again by the next consumer (an upsert is idempotent).
//
// The records are written through an Int32Array over the same bytes, in host byte order: the
// format is little-endian, and so is every host vipgate runs on (checked once, at load).

import { FLOW_WIRE_BYTES, putFlowRecord } from './flow-record';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('ring: the flow record format is little-endian and this host is not');

/** Records per ring in the shared state (state.ts): 65,536 x 24 bytes = 1.5 MiB a ring (issue 11 contract). */
export const RING_RECORDS = 65536;
/** Int32 control words at the start of a ring (16: one 64-byte line). */
export const RING_CTL_WORDS = 16;
const C_HEAD = 0, C_TAIL = 1, C_DROPPED = 2, C_CAPACITY = 3;
const REC_WORDS = FLOW_WIRE_BYTES >> 2;

/** Bytes a ring of `records` takes: its control line, then the records. */
export function ringBytes(records: number): number { return RING_CTL_WORDS * 4 + records * FLOW_WIRE_BYTES; }

export class RecordRing {
  /** The records' bytes; record k (0 <= k < capacity) at k * FLOW_WIRE_BYTES. */
  readonly data: Uint8Array;
  readonly capacity: number;
  private readonly mask: number;
  private readonly ctl: Int32Array;
  private readonly w: Int32Array;

  /**
   * A ring over `ctl` (RING_CTL_WORDS words) and `data` (capacity x 24 bytes, capacity a power of
   * two, 4-byte aligned). Memory that is all zeroes is an empty ring; the capacity is recorded in
   * the control words the first time, and a ring whose recorded capacity differs is refused.
   */
  constructor(ctl: Int32Array, data: Uint8Array) {
    const cap = data.byteLength / FLOW_WIRE_BYTES;
    if (!Number.isInteger(cap) || cap < 1 || (cap & (cap - 1)) !== 0) throw new Error(`ring: ${data.byteLength} bytes is not a power of two of ${FLOW_WIRE_BYTES}-byte records`);
    if (ctl.length < RING_CTL_WORDS || data.byteOffset % 4 !== 0) throw new Error('ring: control words too short or records not 4-byte aligned');
    const recorded = Atomics.load(ctl, C_CAPACITY);
    if (recorded === 0) Atomics.store(ctl, C_CAPACITY, cap);
    else if (recorded !== cap) throw new Error(`ring: the memory holds a ring of ${recorded} records, not ${cap}`);
    this.ctl = ctl;
    this.data = data;
    this.capacity = cap;
    this.mask = cap - 1;
    this.w = new Int32Array(data.buffer, data.byteOffset, cap * REC_WORDS);
  }

  /** Records refused because the ring was full (ever). */
  get dropped(): number { return Atomics.load(this.ctl, C_DROPPED); }
  /** Records pushed (ever, modulo 2^32). */
  get pushed(): number { return Atomics.load(this.ctl, C_HEAD) >>> 0; }

  // ---- producer ----

  /**
   * Push one flow record (allocation-free: the packet path calls it). `macBuf[macAt..+6)` is the
   * client MAC. Returns false (and counts `dropped`) when the ring is full.
   */
  pushFlow(op: number, state: number, macBuf: Uint8Array, macAt: number, cli: number, vip: number, ports: number, backIp: number): boolean {
    const ctl = this.ctl;
    const head = Atomics.load(ctl, C_HEAD);
    if (((head - Atomics.load(ctl, C_TAIL)) | 0) >= this.capacity) { Atomics.add(ctl, C_DROPPED, 1); return false; }
    putFlowRecord(this.data, this.w, (head & this.mask) * FLOW_WIRE_BYTES, op, state, macBuf, macAt, cli, vip, ports, backIp);
    Atomics.store(ctl, C_HEAD, (head + 1) | 0);
    return true;
  }

  /**
   * Push `n` wire records from bytes[at..): as many as fit, in order. Returns how many were
   * pushed; the rest count as `dropped`.
   */
  pushRecords(bytes: Uint8Array, at: number, n: number): number {
    const ctl = this.ctl, head = Atomics.load(ctl, C_HEAD);
    const room = this.capacity - ((head - Atomics.load(ctl, C_TAIL)) | 0);
    const take = Math.min(n, room);
    for (let i = 0; i < take;) {
      const k = (head + i) & this.mask;
      const run = Math.min(take - i, this.capacity - k); // up to the end of the ring, then wrap
      this.data.set(bytes.subarray(at + i * FLOW_WIRE_BYTES, at + (i + run) * FLOW_WIRE_BYTES), k * FLOW_WIRE_BYTES);
      i += run;
    }
    if (take < n) Atomics.add(ctl, C_DROPPED, n - take);
    Atomics.store(ctl, C_HEAD, (head + take) | 0);
    return take;
  }

  /**
   * The attach-time check (src/shm/integrity.ts): head - tail outside 0..capacity cannot come from
   * a producer and a consumer killed anywhere (each moves its own word, after its copy), only
   * from memory that is not a ring any more; such a ring is emptied (tail = head). Returns true
   * when it was.
   */
  repair(): boolean {
    const n = this.readable();
    if (n >= 0 && n <= this.capacity) return false;
    Atomics.store(this.ctl, C_TAIL, Atomics.load(this.ctl, C_HEAD));
    return true;
  }

  // ---- consumer ----

  /** Records ready to be taken. */
  readable(): number { return (Atomics.load(this.ctl, C_HEAD) - Atomics.load(this.ctl, C_TAIL)) | 0; }

  /** Copy up to `max` records into out[at..) (room for them is the caller's), oldest first, and take them. Returns how many. */
  copyOut(out: Uint8Array, at: number, max: number): number {
    const tail = Atomics.load(this.ctl, C_TAIL);
    const n = Math.min(max, this.readable());
    for (let i = 0; i < n;) {
      const k = (tail + i) & this.mask;
      const run = Math.min(n - i, this.capacity - k);
      out.set(this.data.subarray(k * FLOW_WIRE_BYTES, (k + run) * FLOW_WIRE_BYTES), at + i * FLOW_WIRE_BYTES);
      i += run;
    }
    Atomics.store(this.ctl, C_TAIL, (tail + n) | 0);
    return n;
  }

  /**
   * In place, for a consumer that must not allocate (the packet worker's import): the byte offset
   * in `data` of the i-th readable record (0 = oldest; i < readable()). Take them with advance().
   */
  offsetOf(i: number): number { return ((Atomics.load(this.ctl, C_TAIL) + i) & this.mask) * FLOW_WIRE_BYTES; }
  /** The little-endian i32 at byte `at` of `data` (4-aligned: a record's offset + R_CLI, R_VIP, R_PORTS or R_BACKIP). */
  i32At(at: number): number { return this.w[at >> 2]!; }
  /** Take `n` records read in place (n <= readable()). */
  advance(n: number): void { Atomics.store(this.ctl, C_TAIL, (Atomics.load(this.ctl, C_TAIL) + n) | 0); }
}

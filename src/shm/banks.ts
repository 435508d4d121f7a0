// The tables control publishes, in two banks of shared memory with one generation word
// (issue 9): the supervisor writes, the packet worker reads, and neither ever waits for the other.
//
//   header (64 B) | bank 0: its header (64 B) + payload | bank 1: the same
//
// header (Int32 words): magic, layout version, payload bytes per bank, GENERATION, ACK.
// bank header: the generation it was written for, image bytes, new-slot count, checksum.
// payload: the new slots (Int32, room for MAX_BACKEND_SLOTS), then the Tables image
//          (Tables.image: the tables' scalars, sizes and typed arrays in one block).
//
// Generation g lives in bank g & 1. The writer fills the idle bank, then stores the generation
// (Atomics.store: every byte of the bank is visible to a reader that loads the new generation).
// A writer killed before that store leaves the generation where it was: the reader never looks
// at the half-written bank. The reader loads the generation once per batch; when it moved, it
// copies the bank out (so a Tables it hands out is never overwritten under it, however long
// anything keeps it; a big one over several batches, BANK_POLL_CHUNK_BYTES each, so that no batch
// waits long), checks length, generation and checksum, and stores the generation in ACK.
// The writer writes generation g + 1 (into the bank of g - 1) only once ACK = g: before that the
// reader may still be copying g - 1. Until then a publish is kept pending, the latest replacing
// an earlier one, and flush() writes it. readerGone() (no worker runs) lets it write at once;
// a reader that copies while that happens sees the generation move under it, drops the copy
// and takes the newer bank on its next poll.
//
// Works over an ArrayBuffer too (replay, the in-process tests): Atomics on a non-shared
// Int32Array are ordinary loads and stores.

import { Tables } from '../tables/services';
import { MAX_BACKEND_SLOTS } from '../dataplane/state';
import { Ctr } from '../dataplane/counters';
import type { Memory } from '../tables/memory';

/**
 * Room for one Tables image in a bank. 4 MiB holds, for example, 3,000 services of up to 64
 * members each over 1,000 VIPs with 1,024 backends (MAX_BACKENDS): 3.8 MiB, most of it the
 * services' 256-entry pick tables (1 KiB each); 2,048 such services with 2,048 VIPs and all
 * 4,096 backend slots take 2.7 MiB. The fit is checked on the tables themselves (tablesFit,
 * tablesImageBytes), not on those counts: the config check and the API refuse what does not fit.
 * Fixed rather than sized from the config, so that API changes can grow the tables at run time
 * and a region made by one config serves the next.
 */
export const TABLE_IMAGE_BYTES = 4 * 1024 * 1024;

const HDR_BYTES = 64;
const H_MAGIC = 0, H_VERSION = 1, H_PAYLOAD = 2, H_GEN = 3, H_ACK = 4;
/** "VGTB" (vipgate table banks). */
const BANKS_MAGIC = 0x56475442;
/** Bump when anything in this file's layout changes (the region's own layout version covers it too). */
export const BANKS_VERSION = 1;

const BANK_HDR_BYTES = 64;
const B_GEN = 0, B_LEN = 1, B_NEW = 2, B_SUM = 3;
const NEW_SLOTS_BYTES = MAX_BACKEND_SLOTS * 4;
const PAYLOAD_BYTES = NEW_SLOTS_BYTES + TABLE_IMAGE_BYTES;
const BANK_BYTES = BANK_HDR_BYTES + PAYLOAD_BYTES;

/** Bytes of the banks part of the region: a header and two banks (64-byte multiples). */
export function banksSize(): number { return HDR_BYTES + 2 * BANK_BYTES; }

/** Word offsets of the shared words, for tests that play a crashed writer or a wrapped counter. */
export const BANKS_HEADER = { generation: H_GEN, ack: H_ACK } as const;

/** True when `t` fits in a bank; else the message an operator sees (what is too big, what to do). */
export function tablesFit(t: Tables): { ok: true } | { ok: false; why: string } {
  if (t.image.byteLength <= TABLE_IMAGE_BYTES) return { ok: true };
  return {
    ok: false,
    why: `the tables need ${t.image.byteLength} bytes and a table bank holds ${TABLE_IMAGE_BYTES} ` +
      `(about 1 KiB per service for its pick table, plus its members, VIPs and backends): ` +
      `split the services over several vipgate instances or remove services`,
  };
}

/**
 * The generation after g. 0 means "nothing published" and is skipped; generations wrap through
 * the negative Int32 values, and 0xffffffff (-1) is followed by 2, not 1, so that g & 1 keeps
 * alternating the bank. Compared only for equality, never ordered.
 */
export function nextGeneration(g: number): number {
  const n = (g + 1) | 0;
  return n === 0 ? 2 : n;
}

/**
 * FNV-1a over 32-bit words: the bank's generation, image length and new-slot count, then the new
 * slots and the image. Each step (xor, then multiply by an odd prime mod 2^32) is a bijection of
 * the running hash, so a change confined to one word always changes the result.
 */
function checksumStart(gen: number, len: number, nNew: number): number {
  let h = 0x811c9dc5 | 0;
  h = Math.imul(h ^ gen, 0x01000193);
  h = Math.imul(h ^ len, 0x01000193);
  return Math.imul(h ^ nNew, 0x01000193);
}

/** One FNV-1a step per 32-bit word of `w` (see checksum). */
function fnvWords(h: number, w: Int32Array, from: number, to: number): number {
  for (let i = from; i < to; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
  return h;
}

function checksum(gen: number, len: number, nNew: number, news: Int32Array, image: Int32Array): number {
  return fnvWords(fnvWords(checksumStart(gen, len, nNew), news, 0, news.length), image, 0, image.length);
}

function checkArea(memory: Memory, offset: number, who: string): void {
  if (offset % 64 !== 0 || offset < 0 || offset + banksSize() > memory.byteLength) {
    throw new Error(`${who}: table banks at offset ${offset} need ${banksSize()} bytes, 64-byte aligned, in memory of ${memory.byteLength} bytes`);
  }
}

function bankAt(memory: Memory, offset: number, b: number): { hdr: Int32Array; news: Int32Array; image: Uint8Array } {
  const at = offset + HDR_BYTES + b * BANK_BYTES;
  return {
    hdr: new Int32Array(memory, at, BANK_HDR_BYTES / 4),
    news: new Int32Array(memory, at + BANK_HDR_BYTES, MAX_BACKEND_SLOTS),
    image: new Uint8Array(memory, at + BANK_HDR_BYTES + NEW_SLOTS_BYTES, TABLE_IMAGE_BYTES),
  };
}

/** Control (supervisor) side. One writer at a time per region. */
export class BankWriter {
  private readonly hdr: Int32Array;
  private readonly banks: ReturnType<typeof bankAt>[];
  private pending: Tables | null = null;
  /** New slots of every publish not yet written (a coalesced publish must not lose a reset). */
  private readonly pendingNew = new Set<number>();
  private gone = false;

  /** Over fresh (zeroed) memory: sets the banks up empty; over banks set up before: carries on from their generation. */
  constructor(memory: Memory, offset: number) {
    checkArea(memory, offset, 'BankWriter');
    this.hdr = new Int32Array(memory, offset, HDR_BYTES / 4);
    this.banks = [bankAt(memory, offset, 0), bankAt(memory, offset, 1)];
    const h = this.hdr;
    if (h[H_MAGIC] === 0 && h[H_VERSION] === 0 && h[H_GEN] === 0) {
      h[H_VERSION] = BANKS_VERSION; h[H_PAYLOAD] = PAYLOAD_BYTES;
      Atomics.store(h, H_MAGIC, BANKS_MAGIC);
    } else {
      checkHeader(h, 'BankWriter');
    }
  }

  /**
   * Write `t` into the idle bank and switch the generation, unless the reader has not yet acked
   * the previous generation: then keep `t` pending (replacing any earlier pending tables) for
   * flush(). Returns true when written now. Throws, changing nothing, when `t` does not fit.
   */
  publish(t: Tables): boolean {
    const fit = tablesFit(t);
    if (!fit.ok) throw new Error(`cannot publish the tables: ${fit.why}`);
    for (const s of t.newSlots) this.pendingNew.add(s);
    this.pending = t;
    return this.flush();
  }

  /** Write the pending tables if the reader allows it now. True when nothing is left pending. */
  flush(): boolean {
    const t = this.pending;
    if (t === null) return true;
    const h = this.hdr;
    const gen = Atomics.load(h, H_GEN);
    if (Atomics.load(h, H_ACK) === gen && gen !== 0) this.gone = false; // a reader has caught up: the ack protocol holds again
    else if (!this.gone && gen !== 0) return false;
    const next = nextGeneration(gen);
    const bank = this.banks[next & 1]!;
    const len = t.image.byteLength, nNew = this.pendingNew.size;
    let i = 0;
    for (const s of this.pendingNew) bank.news[i++] = s;
    bank.image.set(t.image);
    const words = new Int32Array(bank.image.buffer, bank.image.byteOffset, len / 4);
    const bh = bank.hdr;
    bh[B_GEN] = next; bh[B_LEN] = len; bh[B_NEW] = nNew;
    bh[B_SUM] = checksum(next, len, nNew, bank.news.subarray(0, nNew), words);
    Atomics.store(h, H_GEN, next); // last: the switch
    this.pending = null;
    this.pendingNew.clear();
    return true;
  }

  /** No reader runs (the worker died): write freely, now and until a new reader acks the current generation. */
  readerGone(): void {
    // The dead reader's last ack means nothing now; 0 is never a generation, so only a new
    // reader's ack ends the free mode.
    Atomics.store(this.hdr, H_ACK, 0);
    this.gone = true;
    this.flush();
  }

  /** True while a publish waits for the reader's ack (call flush() every millisecond or so). */
  get isPending(): boolean { return this.pending !== null; }

  /** The generation last written (0: none yet). */
  get generation(): number { return Atomics.load(this.hdr, H_GEN); }
}

function checkHeader(h: Int32Array, who: string): void {
  if (Atomics.load(h, H_MAGIC) !== BANKS_MAGIC || h[H_VERSION] !== BANKS_VERSION || h[H_PAYLOAD] !== PAYLOAD_BYTES) {
    throw new Error(`${who}: the table banks' header says magic 0x${(h[H_MAGIC]! >>> 0).toString(16)}, version ${h[H_VERSION]}, ` +
      `${h[H_PAYLOAD]} bytes per bank; this vipgate expects 0x${BANKS_MAGIC.toString(16)}, ${BANKS_VERSION}, ${PAYLOAD_BYTES} ` +
      `(a region from another vipgate version, or not set up by a supervisor yet): start vipgate with --fresh-state`);
  }
}

/**
 * Bytes of a bank the reader copies and checks per poll: a big table set arrives over several
 * batches instead of stalling one (32 KiB: copied and checked in some 15-30 µs on this 2-core
 * VM, see npm run bench:banks; the lab's tables are ~9 KiB, one poll).
 */
export const BANK_POLL_CHUNK_BYTES = 32 * 1024;

/** Packet worker side. */
export class BankReader {
  private readonly hdr: Int32Array;
  private readonly banks: ReturnType<typeof bankAt>[];
  private seen = 0;
  private current: Tables | null = null;
  // The copy in progress: generation (0: none), its bank header as read, the copy and how far it got.
  private cGen = 0;
  private cLen = 0;
  private cSum = 0;
  private cSane = false;
  private cImage: Uint8Array | null = null;
  private cWords: Int32Array | null = null;
  private cNews: Int32Array | null = null;
  private cDone = 0;
  private cHash = 0;
  /** Banks refused (bad length, generation or checksum), also counted in counters[tables_bank_rejected]. */
  rejected = 0;

  /** `counters`: the shared counters (StateViews.counters), where refused banks are counted. */
  constructor(memory: Memory, offset: number, private readonly counters: Float64Array | null = null) {
    checkArea(memory, offset, 'BankReader');
    this.hdr = new Int32Array(memory, offset, HDR_BYTES / 4);
    this.banks = [bankAt(memory, offset, 0), bankAt(memory, offset, 1)];
    checkHeader(this.hdr, 'BankReader');
  }

  /**
   * Once per batch: the new tables once the generation moved and its bank is copied and checks
   * out, else null (nothing new; a copy still under way, BANK_POLL_CHUNK_BYTES per poll; or a
   * bank refused and counted: the tables in use stay). A new reader's first poll takes the
   * current generation. The one Atomics.load is all it costs when nothing moved.
   */
  poll(): Tables | null {
    const g = Atomics.load(this.hdr, H_GEN);
    if (g === this.seen || g === 0) return null;
    return this.take(g);
  }

  /**
   * A worker's start, before it forwards anything: the current tables copied whole at once
   * (poll() would spread a big set over several batches), or the tables already held (null at
   * start) when nothing was published or the bank was refused.
   */
  takeCurrent(): Tables | null {
    // Bounded: only a writer republishing faster than one copy (never, in practice) keeps it going.
    for (let i = 0; i < 1_000_000; i++) {
      const t = this.poll();
      if (t) return t;
      const g = Atomics.load(this.hdr, H_GEN);
      if (g === 0 || g === this.seen) break;
    }
    return this.current;
  }

  /** The tables last taken (null before the first). */
  get tables(): Tables | null { return this.current; }

  /** True while a new generation is being copied (over several polls when it is big). */
  get copying(): boolean { return this.cGen !== 0; }

  private take(g: number): Tables | null {
    const bank = this.banks[g & 1]!;
    if (this.cGen !== g) this.begin(g, bank);
    // Copy first, check the copy: what is checked is exactly what is used.
    if (this.cImage && this.cWords) {
      const to = Math.min(this.cLen, this.cDone + BANK_POLL_CHUNK_BYTES);
      this.cImage.set(bank.image.subarray(this.cDone, to), this.cDone);
      this.cHash = fnvWords(this.cHash, this.cWords, this.cDone >> 2, to >> 2);
      this.cDone = to;
    }
    if (Atomics.load(this.hdr, H_GEN) !== g) { this.cGen = 0; return null; } // rewritten while copied (writer free after readerGone): the newer one next poll
    if (this.cSane && this.cDone < this.cLen) return null; // more next poll
    let t: Tables | null = null;
    if (this.cSane && this.cHash === this.cSum) {
      try { t = Tables.fromImage(this.cImage!, Array.from(this.cNews!)); } catch { t = null; }
    }
    this.cGen = 0; this.cImage = null; this.cWords = null; this.cNews = null;
    this.seen = g;
    // Acked even when refused: the reader holds nothing of that bank (it copied), and the writer
    // must not wait forever; its next publish goes to the other bank and replaces this one.
    Atomics.store(this.hdr, H_ACK, g);
    if (t === null) {
      this.rejected++;
      if (this.counters) this.counters[Ctr.tables_bank_rejected]!++;
      return null;
    }
    this.current = t;
    return t;
  }

  /** Start copying generation g: read its bank header, allocate the copy (publish time only, never per packet). */
  private begin(g: number, bank: ReturnType<typeof bankAt>): void {
    const bh = bank.hdr;
    const bg = bh[B_GEN]!, len = bh[B_LEN]!, nNew = bh[B_NEW]!;
    this.cGen = g; this.cLen = len; this.cSum = bh[B_SUM]!; this.cDone = 0;
    this.cSane = bg === g && len > 0 && len <= TABLE_IMAGE_BYTES && len % 8 === 0 && nNew >= 0 && nNew <= MAX_BACKEND_SLOTS;
    if (!this.cSane) { this.cImage = null; this.cWords = null; this.cNews = null; return; }
    // Not zeroed (every byte is copied over before use): zeroing megabytes at once would be the
    // one long pause of a big copy; this way its pages are touched a chunk at a time.
    const raw = Buffer.allocUnsafeSlow(len);
    this.cImage = new Uint8Array(raw.buffer, raw.byteOffset, len);
    this.cWords = new Int32Array(raw.buffer, raw.byteOffset, len >> 2);
    this.cNews = bank.news.slice(0, nNew);
    let h = checksumStart(g, len, nNew);
    h = fnvWords(h, this.cNews, 0, nNew);
    this.cHash = h;
  }
}

/**
 * The reader's poll for when no frame comes (the packet worker runs it on a timer): tables
 * published while the link is idle still take effect, and a big set — copied
 * BANK_POLL_CHUNK_BYTES a poll — is chased one chunk per turn of the event loop until it is
 * whole, rather than one chunk per timer tick (a 4 MiB set at 100 ms a tick would take 12 s).
 * Each turn still lets frames and timers in between. stop(): no poll after it (the region may be
 * unmapped next).
 */
export function idlePoller(reader: BankReader, onTables: (t: Tables) => void): { poll(): void; stop(): void } {
  let stopped = false, chasing = false;
  const poll = (): void => {
    if (stopped) return;
    const t = reader.poll();
    if (t) onTables(t);
    if (reader.copying && !chasing) { chasing = true; setImmediate(() => { chasing = false; poll(); }); }
  };
  return { poll, stop() { stopped = true; } };
}


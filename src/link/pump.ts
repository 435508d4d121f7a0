// The one loop between links and the packet path (issue 10). A link fills a batch — frames in one
// memory region, an offset and a length per frame — and the pump runs the packet path over it and
// marks what to send by leaving the frame's length positive (0 = not sent). Live native (many
// frames from a kernel ring), live pcap (batches of one), replay and the in-memory test link all
// go through Pump.run, so the catch-and-count code exists once.
//
// Nothing is allocated per frame or per batch: the batch's arrays are the link's, made once; the
// clock is read by the caller into the Dataplane's clock[NOW] (a double passed as an argument to a
// call V8 does not inline is boxed: see PacketClock in state.ts).

import { Dataplane, VERDICT_TX, VERDICT_HOLD } from '../dataplane/dataplane';
import { Ctr, Drop } from '../dataplane/counters';

/**
 * Frames handed to the packet path at once. `len[i]` in: the frame's length at buf[off[i]]; a
 * negative length -L means the link could only keep part of an L-byte frame (larger than its
 * slot). Out (after Pump.run): the length to transmit (the packet path's txLen: an RST built in
 * place is shorter than the segment it answers), or 0.
 */
export interface Batch {
  buf: Uint8Array;
  off: Int32Array;
  len: Int32Array;
}

export function newBatch(buf: Uint8Array, capacity: number): Batch {
  return { buf, off: new Int32Array(capacity), len: new Int32Array(capacity) };
}

/** Batches at least this long are touched first (prefetch); below it there is nothing to overlap. */
const TOUCH_MIN = 4;
/**
 * Pump.touchFrom's default: 32Ki flows, whose 64-byte records (2 MiB) fill this CPU's L2. Below
 * it the records stay in cache and the second parse is pure cost; above it each lookup misses.
 * Measured by bench/touch.sh (each case alone in a fresh process, 3 rounds, medians; README "The
 * pump in batches"): touched/plain 0.75x at 4Ki flows, 1.16x at 16Ki (single runs from 0.6x to
 * 1.4x), 1.14x at 64Ki, 1.21x at 1Mi.
 */
export const TOUCH_FROM_FLOWS = 32768;

export class Pump {
  /** Sum of the touched values: kept so V8 cannot drop the reads (it means nothing). */
  private touched = 0;
  /** Frames the last run() held (VERDICT_HOLD: the SYN-time check copied them to a hold slot). */
  held = 0;

  /**
   * From this many active flows on, a batch is touched first: every frame's flow-table line is
   * computed (Dataplane.hint), then all are loaded in one tight loop (FlowTable.touchAll), then
   * the batch is processed — a software prefetch, so the batch's cache and TLB misses overlap
   * instead of each frame waiting on its own. Below it the flows' lines stay in cache and the
   * second parse is pure cost (TOUCH_FROM_FLOWS says what was measured). 0: always; Infinity: never.
   */
  touchFrom = TOUCH_FROM_FLOWS;

  /** Per frame of a batch: where its flow-table read will go (Dataplane.hint), for touchFrom. */
  private hints: Int32Array;

  constructor(readonly dp: Dataplane, public batch: Batch) { this.hints = new Int32Array(batch.off.length); }

  /**
   * Run the packet path over frames [0, n) of the batch at time dp.clock[NOW]. Returns how
   * many are to be transmitted (their len stays positive; every other len becomes 0). A throw
   * inside the packet path is a bug: it is counted as internal_error (the frame is not sent) and
   * the rest of the batch goes on.
   */
  run(n: number): number {
    const dp = this.dp, b = this.batch, buf = b.buf, off = b.off, len = b.len, c = dp.state.counters;
    if (n >= TOUCH_MIN && c[Ctr.flows_active]! >= this.touchFrom) {
      const h = this.hints;
      for (let i = 0; i < n; i++) { const l = len[i]!; h[i] = l > 0 ? dp.hint(buf, off[i]!, l) : -1; }
      this.touched ^= dp.flows.touchAll(h, n);
    }
    let tx = 0, held = 0, i = 0;
    while (i < n) {
      try {
        for (; i < n; i++) {
          const l = len[i]!;
          if (l < 0) {
            // Larger than the link's slot: the link kept only part of it. Counted like any frame.
            c[Ctr.frames_in]!++;
            c[Ctr.bytes_in]! -= l;
            c[Drop.frame_too_large]!++;
            len[i] = 0;
          } else {
            const v = dp.step(buf, off[i]!, l);
            if (v === VERDICT_TX) { len[i] = dp.txLen; tx++; } else { len[i] = 0; if (v === VERDICT_HOLD) held++; }
          }
        }
      } catch {
        c[Drop.internal_error]!++; // the one catch at the link boundary (STYLE.md): a bug, counted
        len[i] = 0;
        i++;
      }
    }
    this.held = held;
    return tx;
  }
}

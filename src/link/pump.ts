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

export class Pump {
  /** Sum of the touched values: kept so V8 cannot drop the reads (it means nothing). */
  private touched = 0;
  /** Frames the last run() held (VERDICT_HOLD: the SYN-time check copied them to a hold slot). */
  held = 0;

  /**
   * Touch every frame's flow-table line before processing the batch (a software prefetch, so the
   * batch's cache misses overlap). Off by default: measured per CPU-second on this 2-core VM
   * (`npm run bench`, the batch256 cases) it cost ~25 % with 4Ki flows (every frame is parsed
   * and hashed twice) and gained nothing measurable at 64Ki and 1Mi; the JavaScript between two
   * loads is too long for many misses to be in flight at once. Kept to re-measure on other CPUs.
   */
  touchFirst = false;

  constructor(readonly dp: Dataplane, public batch: Batch) {}

  /**
   * Run the packet path over frames [0, n) of the batch at time dp.clock[NOW]. Returns how
   * many are to be transmitted (their len stays positive; every other len becomes 0). A throw
   * inside the packet path is a bug: it is counted as internal_error (the frame is not sent) and
   * the rest of the batch goes on.
   */
  run(n: number): number {
    const dp = this.dp, b = this.batch, buf = b.buf, off = b.off, len = b.len, c = dp.state.counters;
    if (n >= TOUCH_MIN && this.touchFirst) {
      let x = 0;
      for (let i = 0; i < n; i++) { const l = len[i]!; if (l > 0) x ^= dp.touch(buf, off[i]!, l); }
      this.touched ^= x;
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

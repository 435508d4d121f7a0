// The pcap replay link: frames come from a capture file, time comes from the capture's
// timestamps, and every frame the packet path transmits goes to a pcap writer. The same packet
// path runs here as on a live NIC.
//
// Held SYNs (VERDICT_HOLD, the SYN-time check): a capture has no live backend to probe, so the
// replay composition gives the packet path no hold queue and SYNs are never held; should a
// caller attach one, a held frame is counted in `held` and writes nothing (what a live run
// sends for it depends on a probe the capture cannot answer).

import type { CaptureFrame } from '../pcap/reader';
import type { PcapWriter } from '../pcap/writer';
import { Dataplane } from '../dataplane/dataplane';
import { NOW } from '../dataplane/state';
import { Pump, newBatch } from './pump';

export const LINKTYPE_ETHERNET = 1;

export interface ReplayOptions {
  /** Sweep idle flows whenever the capture clock has moved on this much (ms). Default 1000. */
  sweepIntervalMs?: number;
}

export interface ReplayStats {
  /** Frames handed to the packet path. */
  processed: number;
  /** Frames not handed to it because their link type is not Ethernet (pcapng with mixed interfaces). */
  skippedNotEthernet: number;
  /** Frames the packet path transmitted (written to the output). */
  transmitted: number;
  /** Frames the packet path held (SYN-time check with a hold queue attached): nothing written. */
  held: number;
  firstTsMs: number | null;
  lastTsMs: number | null;
}

/**
 * Run every Ethernet frame through the packet path with its capture timestamp as the clock.
 * Each frame is copied into one preallocated receive buffer first (like a NIC ring slot: the
 * input stays untouched and the packet path rewrites its own copy in place).
 */
export function replayFrames(frames: readonly CaptureFrame[], dp: Dataplane, out: PcapWriter | null, o: ReplayOptions = {}): ReplayStats {
  const sweepEvery = o.sweepIntervalMs ?? 1000;
  let max = 2048;
  for (const f of frames) if (f.data.length > max) max = f.data.length;
  const rx = new Uint8Array(max);
  // Batches of one through the one pump: each frame has its own capture time.
  const batch = newBatch(rx, 1);
  const pump = new Pump(dp, batch);
  const clock = dp.clock;
  const stats: ReplayStats = { processed: 0, skippedNotEthernet: 0, transmitted: 0, held: 0, firstTsMs: null, lastTsMs: null };
  let nextSweep = -Infinity;
  for (const f of frames) {
    if (f.linkType !== LINKTYPE_ETHERNET) { stats.skippedNotEthernet++; continue; }
    const now = f.tsMs;
    if (stats.firstTsMs === null) stats.firstTsMs = now;
    stats.lastTsMs = now;
    if (now >= nextSweep) {
      dp.sweep(now, dp.state.flowSlots);
      nextSweep = now + sweepEvery;
    }
    const len = f.data.length;
    rx.set(f.data, 0);
    stats.processed++;
    batch.off[0] = 0;
    batch.len[0] = len;
    clock[NOW] = now;
    if (pump.run(1) === 1) {
      stats.transmitted++;
      out?.add(rx, 0, batch.len[0]!, now, batch.len[0]!);
    } else {
      stats.held += pump.held;
    }
  }
  return stats;
}

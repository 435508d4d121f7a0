// The live link: frames from a NIC through the packet path and back out of the same NIC, a batch
// at a time through the one pump (pump.ts). Each turn takes at most a batch (the link's batch
// capacity, io.batch for the native ring, 1 for pcap), so under full
// load the event loop still turns between batches (ARP tasks, the API, health checks, timers);
// the native link's wake-up is level-triggered, so what is left waits for the next turn rather
// than being dropped. Send failures are counted, never thrown.

import type { NicLink } from '../../native-bindings/nic';
import { Dataplane } from '../dataplane/dataplane';
import { Ctr, RX_WAIT_FIRST } from '../dataplane/counters';
import { NOW } from '../dataplane/state';
import { Pump } from './pump';

export interface Live {
  pump: Pump;
  /** Copy the link's own counts (ring drops, wake-ups, link errors) into the counters; call every second or so. Returns the link errors seen since the last call. */
  syncStats(): { newLinkErrors: number; lastLinkError: string | null };
}

/**
 * onHold: called after a batch in which the packet path held frames (the SYN-time check); the
 * callee schedules control's drain of the hold queue once per event-loop turn.
 */
/**
 * poll: called once per batch before the packet path runs (a packet worker: take the tables the
 * supervisor published into the banks, if the generation moved).
 */
export function attachLive(nic: NicLink, dp: Dataplane, o: { onHold?: () => void; poll?: () => void } = {}): Live {
  const batch = nic.batch;
  const budget = batch.off.length;
  const pump = new Pump(dp, batch);
  const c = dp.state.counters;
  const clock = dp.clock;
  nic.start(() => {
    const n = nic.rx(budget);
    if (n === 0) return;
    // The clock goes straight into this process's clock array, once per batch: no boxed double.
    // Set before poll: the poll hook imports peers' flows (issue 11), stamped with this time.
    clock[NOW] = Date.now();
    o.poll?.();
    pump.run(n);
    const failed = nic.txRelease(n);
    if (failed !== 0) c[Ctr.tx_errors]! += failed;
    if (pump.held !== 0) o.onHold?.();
  });
  // The link's figures count from this process's attach; the counters live in shared memory and
  // outlive a worker, so each sync adds what is new since the last one (never overwrites).
  let seen = { ringDrops: 0, batches: 0, wakeups: 0, linkErrors: 0, ringWait: [] as number[] };
  const waitFirst = Ctr[RX_WAIT_FIRST];
  return {
    pump,
    syncStats() {
      const s = nic.stats();
      c[Ctr.rx_ring_drops]! += s.ringDrops - seen.ringDrops;
      c[Ctr.rx_batches]! += s.batches - seen.batches;
      c[Ctr.rx_wakeups]! += s.wakeups - seen.wakeups;
      c[Ctr.link_errors]! += s.linkErrors - seen.linkErrors;
      for (let b = 0; b < s.ringWait.length; b++) c[waitFirst + b]! += s.ringWait[b]! - (seen.ringWait[b] ?? 0);
      const fresh = s.linkErrors - seen.linkErrors;
      seen = s;
      return { newLinkErrors: fresh, lastLinkError: s.lastLinkError };
    },
  };
}

/** Slots one sweep slice visits at most: ~0.1-0.2 ms of work here, well under the 1 ms gap goal. */
export const SWEEP_SLICE = 1024;

/**
 * How the live flow sweep is paced: visit every slot once per `passMs` (10 s: a tenth of the
 * table a second, as before issue 10) in slices of at most SWEEP_SLICE slots, one every
 * `intervalMs` (at least 1 ms; small tables get one slice a second). Above ~10Mi slots the pass
 * takes longer rather than the slice growing: lookups expire idle flows they meet anyway, the
 * sweep only keeps flows_active true.
 */
export function sweepPlan(flowSlots: number, passMs = 10_000): { slice: number; intervalMs: number } {
  const perSecond = (flowSlots * 1000) / passMs;
  const slices = Math.max(1, Math.ceil(perSecond / SWEEP_SLICE));
  const intervalMs = Math.max(1, Math.floor(1000 / slices));
  return { slice: Math.min(SWEEP_SLICE, Math.ceil((perSecond * intervalMs) / 1000)), intervalMs };
}

/**
 * The capture filter: ARP, and IPv4 sent to our MAC (VIP traffic, and in nat mode the backends'
 * replies) except what is for this host's own addresses; never our own frames. It names no VIP,
 * so VIPs and backends added at runtime need no new filter.
 */
export function captureFilter(mac: string, hostAddrs: string[]): string {
  const notHost = hostAddrs.map((h) => ` and not dst host ${h}`).join('');
  return `not ether src ${mac} and (arp or (ip and ether dst ${mac}${notHost}))`;
}

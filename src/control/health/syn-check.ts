// The SYN-time check's control side (issue 8 item 5, after JP2002-207647: diagnose at connect).
// The packet path holds the first SYN for a backend nothing vouched for lately (Dataplane:
// needsProbe, holdSyn) and puts its slot on the hold queue's pending ring. Once per event-loop
// turn control drains the ring (drain), probes each backend at once — one probe per backend and
// port, shared by every SYN held for it — and releases the held SYNs by the result:
//
//   answered ...... bHealthOkAt[b] := now, the SYN runs through the packet path again and is
//                   forwarded to b; the flow it creates is verified.
//   no answer ..... b is excluded for that SYN, which runs through the packet path again and
//   (on_fail next)  goes to the next usable member (held again if that one needs a probe too);
//                   with no member left, the client gets an RST.
//   (on_fail reset) the client gets an RST at once.
//
// A probe that outlives its timeout is settled as failed by tick() (the prober's own timer
// normally does it first); its answer, if it comes later, is ignored — a SYN is released once.
// A backend whose probe failed is not probed again for max_age: SYNs held for it meanwhile are
// moved (or reset) on the next turn, so a dead backend costs each later client one event-loop
// turn, not one probe timeout, until the health checks mark it down.
//
// Every probe result also goes to the health observer (one more check result for rise/fall),
// and the verdicts are reported as one `syn_check` event per backend per second, in aggregate.
// Time is a parameter everywhere (now), so the unit tests run it on a fake clock.

import type { Dataplane } from '../../dataplane/dataplane';
import { VERDICT_TX, VERDICT_HOLD } from '../../dataplane/dataplane';
import type { SynHold } from '../../dataplane/hold';
import { HOLD_HELD } from '../../dataplane/hold';
import { Ctr, Drop } from '../../dataplane/counters';
import { SynFail } from '../../tables/services';
import { formatIpv4 } from '../../wire/addr';
import type { EventSink, HealthObserver, ProbeResult } from './types';
import type { Prober } from './syn-probe';

export interface SynCheckOptions {
  dp: Dataplane;
  hold: SynHold;
  prober: Prober;
  /** How long a probe may take before the backend counts as not answering (syn_check.timeout). */
  timeoutMs: number;
  /** Transmit buf[0, len) on the NIC; false when the send failed (counted as tx_errors). */
  send(buf: Buffer, len: number): boolean;
  observer?: HealthObserver;
  events?: EventSink;
  /** How often the aggregate events are emitted (ms, default 1000). */
  eventIntervalMs?: number;
  /** Control's clock (ms), for results that arrive on their own (default Date.now). */
  clock?: () => number;
  /** A backend's name by slot for reports (default: the tables'; a packet worker's tables from the banks carry none). */
  nameOf?: (b: number) => string | undefined;
}

interface ProbeRun {
  b: number;
  port: number;
  startedAt: number;
  slots: number[];
  settled: boolean;
}

interface Tally { probes: number; failed: number; forwarded: number; moved: number; reset: number; lastReason: string | null }

const key = (b: number, port: number): number => b * 65536 + port;

export class SynCheck {
  private readonly o: SynCheckOptions;
  private readonly runs = new Map<number, ProbeRun>();
  /** (backend, port) -> when its last probe failed, and why. */
  private readonly failedAt = new Map<number, { at: number; reason: string }>();
  private readonly tally = new Map<number, Tally>();
  private nextEventAt = 0;
  /** Per hold slot: 1 once the SYN has been moved away from a backend that failed its probe. */
  private readonly moved: Uint8Array;
  /** Probe answers that came after their probe had been settled (timed out): ignored. */
  lateAnswers = 0;
  /**
   * After close(): nothing is probed, settled or sent any more. Closing the prober resolves its
   * probes in flight ("prober closed"); acting on those would send RSTs or moved SYNs through a
   * NIC that is being closed, and a drain scheduled before the stop would probe again.
   */
  private closed = false;

  constructor(o: SynCheckOptions) {
    this.o = o;
    this.moved = new Uint8Array(o.hold.capacity);
    o.hold.unansweredMs = o.timeoutMs;
  }

  private get tables() { return this.o.dp.currentTables; }
  private name(b: number): string { return (this.o.nameOf ? this.o.nameOf(b) : this.tables.backendNames[b]) ?? `slot ${b}`; }

  /** Take every newly held SYN off the pending ring and act on it. Call once per event-loop turn with held SYNs. */
  drain(now: number): void {
    if (this.closed) return;
    const h = this.o.hold;
    for (let s = h.takePending(); s >= 0; s = h.takePending()) {
      if (h.state[s] !== HOLD_HELD) continue;
      const b = h.backend[s]!;
      const port = h.keyPorts[s]! & 0xffff;
      const k = key(b, port);
      const run = this.runs.get(k);
      if (run) { run.slots.push(s); continue; }
      const failed = this.failedAt.get(k);
      const maxAge = this.tables.synCheckMaxAgeMs;
      if (failed && now - failed.at <= maxAge) { this.releaseFailed(s, b, now); continue; }
      // bHealthOkAt may have become fresh since the SYN was held (another probe, a health check);
      // a SYN its backend left unanswered (a retransmit, or a suspect backend) is probed regardless.
      if (h.mustProbe[s] === 0 && now - this.o.dp.state.bHealthOkAt[b]! <= maxAge) { this.forward(s, now); continue; }
      this.start(b, port, s, now);
    }
  }

  private start(b: number, port: number, slot: number, now: number): void {
    const t = this.tables;
    const run: ProbeRun = { b, port, startedAt: now, slots: [slot], settled: false };
    const k = key(b, port);
    this.runs.set(k, run);
    this.count(b).probes++;
    const name = this.name(b);
    const ip = t.bIp[b]!;
    void this.o.prober.probe(ip, port, this.o.timeoutMs).then((r) => {
      if (this.closed) return;
      if (run.settled) { this.lateAnswers++; return; }
      this.settle(k, run, r, (this.o.clock ?? Date.now)(), name, ip);
    });
  }

  /** Settle a probe with its result: report it, remember it, release its SYNs. Exactly once per probe. */
  private settle(k: number, run: ProbeRun, r: ProbeResult, now: number, name = this.name(run.b), ip = this.tables.bIp[run.b]!): void {
    if (run.settled) return;
    run.settled = true;
    this.runs.delete(k);
    this.o.observer?.observe(name, r, now, run.port);
    if (r.ok) {
      this.failedAt.delete(k);
      this.o.dp.state.bHealthOkAt[run.b] = now;
      for (const s of run.slots) this.forward(s, now);
    } else {
      const reason = `${formatIpv4(ip)}:${run.port} ${r.reason ?? 'failed'}`;
      this.failedAt.set(k, { at: now, reason });
      const c = this.count(run.b);
      c.failed++;
      c.lastReason = reason;
      for (const s of run.slots) this.releaseFailed(s, run.b, now);
    }
  }

  /** Settle probes that have outlived their timeout (as failed), and emit the aggregate events. Call every few ms to a second. */
  tick(now: number): void {
    if (this.closed) return;
    this.drain(now);
    for (const [k, run] of [...this.runs]) {
      if (now - run.startedAt >= this.o.timeoutMs) {
        this.settle(k, run, { ok: false, latencyMs: now - run.startedAt, reason: `timeout after ${this.o.timeoutMs} ms` }, now);
      }
    }
    if (now >= this.nextEventAt) this.flushEvents(now);
    const maxAge = this.tables.synCheckMaxAgeMs;
    for (const [k, f] of this.failedAt) if (now - f.at > maxAge) this.failedAt.delete(k);
  }

  /** The earliest time tick() has work (a probe's deadline), or Infinity. */
  nextDeadline(): number {
    let d = Infinity;
    for (const run of this.runs.values()) d = Math.min(d, run.startedAt + this.o.timeoutMs);
    return d;
  }

  private releaseFailed(s: number, b: number, now: number): void {
    const h = this.o.hold;
    if (this.tables.synCheckOnFail === SynFail.reset || !h.exclude(s, b)) { this.reset(s, now, b); return; }
    this.moved[s] = 1;
    this.forward(s, now);
  }

  /** Run held SYN s through the packet path again and act on the verdict. */
  private forward(s: number, now: number): void {
    const h = this.o.hold, dp = this.o.dp, c = dp.state.counters;
    const from = h.backend[s]!;
    const v = dp.runHeld(s, now);
    if (v === VERDICT_HOLD) {
      // Moved to a member that needs a probe too: it is on the pending ring again.
      this.drain(now);
      return;
    }
    if (v === VERDICT_TX) {
      if (!this.o.send(h.frames[s]!, dp.txLen)) c[Ctr.tx_errors]!++;
      if (this.moved[s] === 0) { c[Ctr.syn_check_forwarded]!++; this.count(from).forwarded++; } else { c[Ctr.syn_check_moved]!++; this.count(from).moved++; }
      this.free(s);
      return;
    }
    // Dropped (counted by the packet path). No member left: the client gets an RST rather than
    // a silent wait; any other reason (unresolved MAC, full table) is left to its retransmit.
    if (dp.lastDrop === Drop.no_backend) this.reset(s, now, from);
    else this.free(s);
  }

  private reset(s: number, now: number, b: number): void {
    const h = this.o.hold, dp = this.o.dp, c = dp.state.counters;
    const len = dp.resetHeld(s, now);
    if (!this.o.send(h.frames[s]!, len)) c[Ctr.tx_errors]!++;
    c[Ctr.syn_check_resets]!++;
    this.count(b).reset++;
    this.free(s);
  }

  private free(s: number): void {
    this.moved[s] = 0;
    this.o.hold.free(s);
  }

  private count(b: number): Tally {
    let t = this.tally.get(b);
    if (!t) { t = { probes: 0, failed: 0, forwarded: 0, moved: 0, reset: 0, lastReason: null }; this.tally.set(b, t); }
    return t;
  }

  /** One `syn_check` event per backend with activity since the last one. */
  flushEvents(now: number): void {
    this.nextEventAt = now + (this.o.eventIntervalMs ?? 1000);
    if (!this.o.events || this.tally.size === 0) { this.tally.clear(); return; }
    for (const [b, t] of this.tally) {
      this.o.events.emit('syn_check', {
        backend: this.name(b), probes: t.probes, probes_failed: t.failed,
        forwarded: t.forwarded, moved: t.moved, reset: t.reset, ...(t.lastReason ? { last_failure: t.lastReason } : {}),
      }, now);
    }
    this.tally.clear();
  }

  close(): void {
    this.closed = true;
    this.o.prober.close();
  }
}

/** Hold slots for a live run: SYNs that arrive within one probe timeout for unverified backends (1.6 MB). */
export const LIVE_HOLD_SLOTS = 1024;

export interface LiveSynCheck {
  check: SynCheck;
  /** For the link: a SYN was held; drains the queue once on the next turn, however many were held. */
  onHold(): void;
  stop(): void;
}

/**
 * The SYN-time check on a live NIC: a hold queue attached to the packet path, the prober, a
 * drain scheduled once per event-loop turn with held SYNs (setImmediate), and tick() every second
 * (late probes, aggregate events). The prober's own timer settles a probe at its timeout.
 */
export function startLiveSynCheck(o: Omit<SynCheckOptions, 'hold'> & { hold: SynHold }): LiveSynCheck {
  const check = new SynCheck(o);
  o.dp.attachHold(o.hold);
  let scheduled = false;
  const run = (): void => { scheduled = false; check.drain(Date.now()); };
  const timer = setInterval(() => check.tick(Date.now()), 1000);
  timer.unref();
  return {
    check,
    onHold() { if (!scheduled) { scheduled = true; setImmediate(run); } },
    stop() { clearInterval(timer); check.close(); },
  };
}

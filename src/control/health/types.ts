// The seams between the health checker, the SYN-time check and the event log: plain types, so
// each side is built and tested on its own and the composition root joins them.

/** The outcome of one probe of a backend (a periodic health check or a SYN-time probe). */
export interface ProbeResult {
  ok: boolean;
  /** Wall time the probe took (ms), also for failures (a timeout reports the timeout). */
  latencyMs: number;
  /** Why it failed, for operators ("connection refused", "timeout after 10 ms", "status 503"); null when ok. */
  reason: string | null;
}

/**
 * Feeds a result that was not produced by the periodic checker (a SYN-time probe) into a
 * backend's health state machine, as one more check result. `now` is control's clock (ms).
 */
export interface HealthObserver {
  observe(backend: string, result: ProbeResult, now: number): void;
}

/**
 * Where transitions are reported: one structured event per transition (health up/down, failover,
 * fail-back, switch, SYN-check verdicts in aggregate). The sink logs it, counts it, keeps it in
 * the recent-events list and notifies hooks; emit() never blocks and never throws.
 */
export interface EventSink {
  emit(type: string, fields: Record<string, unknown>, now?: number): void;
}

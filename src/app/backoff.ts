// The packet worker's restart policy: a pure function of (state, event, now), so the supervisor's
// timers only carry it out and the tests run it on a fake clock.
//
// A worker exit the supervisor did not ask for is counted and answered with a new worker: at once
// the first time (a single crash costs no more than the start of a process), then after a delay
// that doubles with each further exit in a row (100 ms, 200 ms, ... capped at 5 s), so a worker
// that cannot run never becomes a tight restart loop. A worker that ran long enough (30 s) ends
// the streak: its next crash is again restarted at once.

export interface RestartPolicy {
  /** The delay after the second exit in a row (ms); it doubles from there. */
  baseMs: number;
  /** The longest delay (ms). */
  capMs: number;
  /** A worker that ran at least this long (ms) ends the streak. */
  resetAfterMs: number;
}

export const RESTART_POLICY: RestartPolicy = { baseMs: 100, capMs: 5000, resetAfterMs: 30_000 };

export type WorkerPhase =
  /** Spawned, not yet forwarding (attaching the region and the ring). */
  | 'starting'
  /** Forwarding (said `ready`). */
  | 'running'
  /** Exited unasked; a new one starts at `nextStartAt`. */
  | 'backoff'
  /** Asked to stop (shutdown, upgrade): no restart. */
  | 'stopping'
  | 'stopped';

export interface WorkerExit {
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  signal: string | null;
  /** What the worker said before it died (a `fatal` message), if anything. */
  reason: string | null;
  /** When it exited (ms since the epoch). */
  at: number;
}

export interface RestartState {
  phase: WorkerPhase;
  /** Unasked exits since the supervisor started (vipgate_worker_restarts_total). */
  restarts: number;
  /** Unasked exits in a row (each without a worker that ran resetAfterMs). */
  streak: number;
  /** When the current worker was started, or null. */
  startedAt: number | null;
  lastExit: WorkerExit | null;
  /** phase backoff: when to start the next worker. */
  nextStartAt: number | null;
}

export function initialRestartState(): RestartState {
  return { phase: 'stopped', restarts: 0, streak: 0, startedAt: null, lastExit: null, nextStartAt: null };
}

export type WorkerEvent =
  | { type: 'spawned' }
  | { type: 'ready' }
  | { type: 'exit'; exit: WorkerExit }
  | { type: 'stop' };

/** The delay before restarting after the `streak`-th exit in a row (1: the first). */
export function restartDelayMs(streak: number, p: RestartPolicy = RESTART_POLICY): number {
  if (streak <= 1) return 0;
  return Math.min(p.capMs, p.baseMs * 2 ** Math.min(streak - 2, 30));
}

export function stepRestart(s: RestartState, e: WorkerEvent, now: number, p: RestartPolicy = RESTART_POLICY): RestartState {
  switch (e.type) {
    case 'spawned':
      if (s.phase === 'stopping') return s;
      return { ...s, phase: 'starting', startedAt: now, nextStartAt: null };
    case 'ready':
      return s.phase === 'starting' ? { ...s, phase: 'running' } : s;
    case 'stop':
      return { ...s, phase: s.phase === 'starting' || s.phase === 'running' ? 'stopping' : 'stopped', nextStartAt: null };
    case 'exit': {
      if (s.phase === 'stopping' || s.phase === 'stopped') return { ...s, phase: 'stopped', startedAt: null, nextStartAt: null };
      const ranMs = s.startedAt === null ? 0 : now - s.startedAt;
      const streak = ranMs >= p.resetAfterMs ? 1 : s.streak + 1;
      return { phase: 'backoff', restarts: s.restarts + 1, streak, startedAt: null, lastExit: e.exit, nextStartAt: now + restartDelayMs(streak, p) };
    }
  }
}

/** An exit for logs and `vipgate status`: "SIGKILL", "exit code 3: cannot attach ...". */
export function describeExit(x: WorkerExit): string {
  const how = x.signal ? `killed by ${x.signal}` : `exit code ${x.code ?? '?'}`;
  return x.reason ? `${how}: ${x.reason}` : how;
}

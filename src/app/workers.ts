// The supervisor's side of the packet worker: spawn it with the packet socket inherited and an
// IPC channel, relay what it reports (SYN-time probe results to the health manager, its events
// to the event log), and answer an exit it was not asked for with a new worker as the restart
// policy says (backoff.ts: at once, then with growing delays). The policy is the pure part; this
// file only carries it out with timers and processes.

import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { NicLink } from '../../native-bindings/nic';
import type { Logger, LogLevel } from '../obs/log';
import type { WorkerView } from '../control/api-types';
import { initialRestartState, stepRestart, describeExit, type RestartState, type WorkerEvent, type WorkerExit } from './backoff';
import { isWorkerMessage, WORKER_PACKET_FD, type SupervisorToWorker, type WorkerToSupervisor } from './ipc';
import { setFifo } from '../../native-bindings/afpacket';
import { scheduling } from '../obs/proc';

/**
 * The packet worker's nice value. Where control and the packet path share CPUs (this 2-core lab
 * box, any small appliance), a burst of control work — API changes with their fsync, table
 * builds, health checks — must not take the CPU from forwarding: control can wait a few ms, the
 * packet path cannot (issue 9 item 6). Needs CAP_SYS_NICE (root has it); without it the worker
 * runs as an equal of control, and the supervisor says so once.
 */
export const WORKER_NICE = -10;

/** A worker that has not said `ready` this long after its start is killed (and restarted). */
export const WORKER_READY_TIMEOUT_MS = 10_000;

export interface WorkerManagerOptions {
  log: Logger;
  iface: string;
  region: string;
  nic: NicLink;
  filter: string;
  /** rtPriority: io.rt_priority, the worker's SCHED_FIFO priority, 0 for none (nice WORKER_NICE). */
  io: { backend: 'native' | 'pcap' | 'auto'; batch: number; spinUs: number; rtPriority: number };
  synCheck: { timeoutMs: number } | null;
  logOptions: { level: LogLevel; format: 'json' | 'text' };
  /** Backend names by slot, as published last. */
  names(): string[];
  probe(m: Extract<WorkerToSupervisor, { t: 'probe' }>): void;
  event(m: Extract<WorkerToSupervisor, { t: 'event' }>): void;
  /** No worker reads the banks any more (it exited): the writer must not wait for its ack. */
  readerGone(): void;
  /** The worker's script (default: worker.js next to this file). */
  entry?: string;
  /** A worker process already started by launchWorker, to take first. */
  spare?: ChildProcess;
  clock?: () => number;
}

/** Start a packet worker process (it loads its code, then waits for init on the IPC channel). */
export function launchWorker(nic: NicLink, entry = path.join(__dirname, 'worker.js')): ChildProcess {
  return spawn(process.execPath, [entry], { stdio: ['ignore', 'inherit', 'inherit', 'ipc', handedFd(nic) ?? 'ignore'] });
}

/**
 * For measurement only (bench:continuity's worker-kill/own row, issue 9 item 3 "measure both
 * ways"): VIPGATE_WORKER_OWN_SOCKET=1 makes each worker open a packet socket of its own instead of
 * taking the supervisor's, so the frames that come while no worker runs are lost, not kept in the
 * ring. Never what an operator wants; the supervisor logs it at start.
 */
export const OWN_SOCKET_ENV = 'VIPGATE_WORKER_OWN_SOCKET';
export function workerOwnsSocket(nic: NicLink): boolean { return nic.io === 'native' && process.env[OWN_SOCKET_ENV] === '1'; }
/** The packet socket each worker inherits, or null (pcap, or the measurement knob above). */
function handedFd(nic: NicLink): number | null { return workerOwnsSocket(nic) ? null : nic.fd; }

export class WorkerManager {
  private s: RestartState = initialRestartState();
  private child: ChildProcess | null = null;
  /** A worker process started ahead, its code loaded, waiting for init (the next restart takes it). */
  private spare: ChildProcess | null = null;
  private spareTimer: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readyTimer: NodeJS.Timeout | null = null;
  private fatal: string | null = null;
  private onFirstReady: ((m: Extract<WorkerToSupervisor, { t: 'ready' }>) => void) | null = null;
  private exited: (() => void) | null = null;
  private readonly clock: () => number;
  /** stop() was called: no worker is started any more. */
  private halted = false;

  constructor(private readonly o: WorkerManagerOptions) {
    this.clock = o.clock ?? Date.now;
    // One started ahead (an upgrade's new build starts it while the old one still forwards).
    if (o.spare?.connected) this.spare = this.adopt(o.spare);
    else o.spare?.kill('SIGKILL');
  }

  private step(e: WorkerEvent, now = this.clock()): void { this.s = stepRestart(this.s, e, now); }

  /** Start the first worker; `onFirstReady` runs once, when a worker first forwards. */
  start(onFirstReady: ((m: Extract<WorkerToSupervisor, { t: 'ready' }>) => void) | null): void {
    this.onFirstReady = onFirstReady;
    this.spawn();
  }

  /** A worker process with its listeners, not yet told anything (it loads its code and waits for init). */
  private launch(): ChildProcess {
    return this.adopt(launchWorker(this.o.nic, this.o.entry));
  }

  private adopt(child: ChildProcess): ChildProcess {
    child.on('message', (m: unknown) => this.onMessage(child, m));
    child.on('error', (e) => { if (this.child === child) this.fatal ??= `cannot start the worker process: ${e.message}`; });
    child.on('exit', (code, signal) => {
      const at = this.clock();
      // What it said last (a `fatal`) may still be in the IPC pipe when the exit is reaped: act
      // once the channel has closed (its messages are delivered before), or 200 ms at most.
      let done = false;
      const go = () => {
        if (done) return;
        done = true;
        if (child === this.spare) this.onSpareExit(child, code, signal);
        else this.onExit(child, { code, signal, reason: this.child === child ? this.fatal : null, at });
      };
      if (child.connected) { child.once('disconnect', go); setTimeout(go, 200); } else go();
    });
    return child;
  }

  private spawn(): void {
    this.timer = null;
    if (this.halted) return;
    const o = this.o;
    this.fatal = null;
    // A spare that has loaded its code already skips Node's start-up (~0.1-0.3 s here): the
    // restart then costs the attach alone.
    let child = this.spare;
    this.spare = null;
    if (!child || !child.connected) child = this.launch();
    this.child = child;
    this.prioritise(child);
    this.step({ type: 'spawned' });
    const init: SupervisorToWorker = {
      t: 'init', iface: o.iface, region: o.region, packetFd: handedFd(o.nic) === null ? null : WORKER_PACKET_FD, filter: o.filter, ownSocket: workerOwnsSocket(o.nic),
      io: o.io, synCheck: o.synCheck, names: o.names(), log: o.logOptions,
    };
    const c = child;
    c.send(init, (err) => { if (err && this.child === c) this.fatal ??= `cannot talk to the worker: ${err.message}`; });
    this.readyTimer = setTimeout(() => {
      if (this.child !== c || this.s.phase !== 'starting') return;
      this.fatal = `it did not attach within ${WORKER_READY_TIMEOUT_MS / 1000} s`;
      c.kill('SIGKILL');
    }, WORKER_READY_TIMEOUT_MS);
  }

  /** As /proc says; with io.rt_priority and not SCHED_FIFO, why (the governor stepped it down, see rt-governor.ts). */
  private schedulingText(): string | null {
    const c = this.child;
    if (c?.pid === undefined || c.exitCode !== null || c.signalCode !== null) return null;
    const s = scheduling(c.pid);
    return s && this.o.io.rtPriority > 0 && !s.startsWith('SCHED_FIFO') ? `${s} (io.rt_priority ${this.o.io.rtPriority}: stepped down while saturated, or not permitted: see the log)` : s;
  }

  private priorityWarned = false;
  private realtimeWarned = false;
  private prioritise(child: ChildProcess): void {
    if (child.pid === undefined) return;
    try {
      os.setPriority(child.pid, WORKER_NICE);
    } catch (e) {
      if (!this.priorityWarned) {
        this.priorityWarned = true;
        this.o.log.warn(`cannot give the packet worker priority over control (nice ${WORKER_NICE}): ${(e as Error).message}; it shares the CPU with control as an equal, so a burst of API changes can delay forwarding (give vipgate CAP_SYS_NICE, e.g. AmbientCapabilities=CAP_SYS_NICE in its systemd unit)`, { event: 'worker_priority' });
      }
    }
    const rt = this.o.io.rtPriority;
    if (rt <= 0) return;
    // Its main thread only (the PID): the thread that runs the packet loop. V8's helper threads
    // stay ordinary tasks.
    try {
      setFifo(child.pid, rt);
    } catch (e) {
      if (this.realtimeWarned) return;
      this.realtimeWarned = true;
      this.o.log.warn(`cannot make the packet worker real-time (io.rt_priority ${rt}, SCHED_FIFO): ${(e as Error).message}; it runs as an ordinary task at nice ${WORKER_NICE} instead (give vipgate CAP_SYS_NICE, e.g. AmbientCapabilities=CAP_SYS_NICE in its systemd unit)`, { event: 'worker_priority' });
    }
  }

  /** Keep one spare worker process loaded beside the running one. */
  private ensureSpare(): void {
    this.spareTimer = null;
    if (this.halted || this.spare) return;
    this.spare = this.launch();
  }

  private onSpareExit(child: ChildProcess, code: number | null, signal: string | null): void {
    this.spare = null;
    if (this.halted) return;
    this.o.log.warn(`the spare packet worker PID ${child.pid} exited (${signal ? `killed by ${signal}` : `exit code ${code}`}); another in 1 s`, { event: 'spare_exit', pid: child.pid });
    this.spareTimer = setTimeout(() => this.ensureSpare(), 1000);
  }

  private onMessage(child: ChildProcess, m: unknown): void {
    if (this.child !== child) return;
    if (!isWorkerMessage(m)) {
      this.o.log.error(`the packet worker sent an unexpected message: ${JSON.stringify(m).slice(0, 200)}`, { event: 'worker_protocol' });
      return;
    }
    switch (m.t) {
      case 'ready': {
        if (this.readyTimer) clearTimeout(this.readyTimer);
        this.step({ type: 'ready' });
        const again = this.s.restarts > 0 ? ` (restart ${this.s.restarts}${this.s.lastExit ? `, after ${describeExit(this.s.lastExit)}` : ''})` : '';
        this.o.log.info(`packet worker PID ${child.pid} forwarding on ${this.o.iface}: ${m.io} I/O through ${m.why}${again}`,
          { event: 'worker_ready', pid: child.pid, restarts: this.s.restarts });
        const f = this.onFirstReady;
        this.onFirstReady = null;
        f?.(m);
        this.ensureSpare();
        break;
      }
      case 'probe': this.o.probe(m); break;
      case 'event': this.o.event(m); break;
      case 'fatal': this.fatal = m.reason; break;
    }
  }

  private onExit(child: ChildProcess, exit: WorkerExit): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    this.o.readerGone();
    const asked = this.s.phase === 'stopping';
    // One reading of the clock for the step and the delay: two could straddle a millisecond
    // and say "restart in 99 ms" for the policy's 100.
    const now = this.clock();
    this.step({ type: 'exit', exit }, now);
    if (asked) {
      this.o.log.info(`packet worker PID ${child.pid} stopped (${describeExit(exit)})`, { event: 'worker_stopped', pid: child.pid });
      this.exited?.();
      return;
    }
    if (this.s.phase !== 'backoff') return;
    const delay = Math.max(0, this.s.nextStartAt! - now);
    this.o.log.error(`packet worker PID ${child.pid} exited unexpectedly (${describeExit(exit)}); ` +
      `restart ${this.s.restarts}${delay ? ` in ${delay} ms (${this.s.streak} exits in a row)` : ' now'}; frames wait in the ring meanwhile`,
    { event: 'worker_exit', pid: child.pid, code: exit.code, signal: exit.signal, reason: exit.reason, restarts: this.s.restarts, delayMs: delay });
    this.timer = setTimeout(() => this.spawn(), delay);
  }

  /** The backend names changed (a publish): the worker's SYN-time check reports by name. */
  names(names: string[]): void {
    const c = this.child;
    if (c && c.connected) c.send({ t: 'names', names } satisfies SupervisorToWorker, () => { /* gone: its exit says so */ });
  }

  /** Ask the worker to stop (it finishes the batch in hand; the ring keeps the rest); SIGKILL after `ms`. Resolves once it exited. */
  stop(ms: number): Promise<void> {
    this.halted = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.dropSpare();
    this.step({ type: 'stop' });
    const c = this.child;
    if (!c) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => {
        this.o.log.warn(`packet worker PID ${c.pid} did not stop within ${ms} ms; killing it`, { event: 'worker_kill' });
        c.kill('SIGKILL');
      }, ms);
      this.exited = () => { clearTimeout(kill); this.exited = null; resolve(); };
      if (c.connected) c.send({ t: 'stop' } satisfies SupervisorToWorker, (err) => { if (err) c.kill('SIGTERM'); }); else c.kill('SIGTERM');
    });
  }

  /** Kill the worker now (the supervisor itself is going down on a bug); no restart. */
  kill(): void {
    this.halted = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.dropSpare();
    this.child?.kill('SIGKILL');
  }

  private dropSpare(): void {
    if (this.spareTimer) { clearTimeout(this.spareTimer); this.spareTimer = null; }
    const sp = this.spare;
    this.spare = null;
    sp?.kill('SIGKILL'); // it holds nothing but its copy of the socket's descriptor
  }

  view(): WorkerView {
    const s = this.s, iso = (t: number | null) => t === null ? null : new Date(t).toISOString();
    return {
      pid: this.child?.pid ?? null, startedAt: iso(s.startedAt), restarts: s.restarts,
      lastExit: s.lastExit ? { reason: describeExit(s.lastExit), at: iso(s.lastExit.at)! } : null,
      state: s.phase, nextStartAt: iso(s.nextStartAt),
      scheduling: this.schedulingText(),
    };
  }
}

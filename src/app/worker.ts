// The packet worker's composition root and entry point: a separate OS process under the
// supervisor (supervisor.ts), so that a crash here — an uncaught error, an abort in native code,
// SIGKILL — takes no control state with it. It owns the hot loop and nothing else:
//
//   - the shared region (attachRegion: header checked, shape read from it): flows, nat reverse
//     index, neighbours, counters, per-backend figures all live there and outlive this process;
//   - the tables, from the banks the supervisor publishes into (polled once per batch);
//   - the packet socket the supervisor opened and keeps open, inherited as fd 4 and attached
//     with the addon's attach(): frames that came while no worker ran wait in the ring;
//   - the bounded flow sweep and the SYN-time check (its hold queue is private to this process;
//     probe results and events go to the supervisor over IPC).
//
// It dies with the supervisor: the IPC channel's 'disconnect' (the supervisor exited or was
// killed) ends it at once, so a whole restart never finds an orphan still reading the ring.

import * as os from 'node:os';
import { attachRegion, type Region } from '../shm/region';
import { parentDeathSignal } from '../../native-bindings/shm';
import { dropped } from '../shm/integrity';
import { BankReader, idlePoller } from '../shm/banks';
import { Dataplane } from '../dataplane/dataplane';
import { openAfPacket, setFifo, threadCpuClock } from '../../native-bindings/afpacket';
import { performance } from 'node:perf_hooks';
import { scheduling } from '../obs/proc';
import { stepRt, RT_WINDOW_MS, RT_STEP_DOWN_BUSY, RT_STEP_UP_BUSY, type RtState } from './rt-governor';
import { openNic, type NicLink } from '../../native-bindings/nic';
import { attachLive, sweepPlan } from '../link/live';
import { SynHold } from '../dataplane/hold';
import { startLiveSynCheck, LIVE_HOLD_SLOTS, type LiveSynCheck } from '../control/health/syn-check';
import { openProber } from '../control/health/syn-probe';
import { createLogger, type Logger } from '../obs/log';
import { isSupervisorMessage, type WorkerInit, type WorkerToSupervisor } from './ipc';

/**
 * Peers' flow records (issue 11) upserted per batch at most: ~256 x 0.2-0.5 µs added to one batch's
 * latency, while a snapshot of any size still drains at ~256 records per batch under traffic.
 */
const IMPORT_PER_BATCH = 256;
/** ... and per idle poll (every 100 ms with no frames): a few ms of work, ~160k records/s. */
const IMPORT_PER_IDLE = 16384;

/** Exit codes: the supervisor reports them (`vipgate status` lastExit) with the `fatal` reason. */
export const WORKER_EXIT_FATAL = 3;
export const WORKER_EXIT_BUG = 70;

function send(m: WorkerToSupervisor): void {
  if (process.connected) process.send!(m, undefined, undefined, () => { /* the supervisor is gone: 'disconnect' ends us */ });
}

/** Say why, then exit (once the message is out: exiting at once could lose it; 1 s at most). */
function fatalExit(reason: string, code: number): void {
  if (!process.connected) process.exit(code);
  process.send!({ t: 'fatal', reason } satisfies WorkerToSupervisor, undefined, undefined, () => process.exit(code));
  setTimeout(() => process.exit(code), 1000).unref();
}

interface Running {
  region: Region;
  nic: NicLink;
  syn: LiveSynCheck | null;
  /** How the SYN-time check probes (raw SYNs, or TCP connects and why), or null when it is off. */
  synProbes: string | null;
  timers: NodeJS.Timeout[];
  /** Stopped by stopWorker: a poll already scheduled must not read the unmapped region. */
  idle: { stop(): void };
  log: Logger;
}

/** Attach the region, the tables and the ring; start forwarding. Throws with the reason on any failure. */
export function startWorker(init: WorkerInit): Running {
  const log = createLogger({ level: init.log.level, format: init.log.format, base: { role: 'worker', worker_pid: process.pid } });
  const region = attachRegion(init.region);
  let nic: NicLink | null = null;
  try {
    // The previous worker may have died mid-write: check every record before the first write.
    const rep = region.checkRecords();
    if (dropped(rep) || rep.reverseRepaired || rep.ringsReset) log.warn(`shared state: dropped ${dropped(rep)} record(s) that could not be trusted and relinked ${rep.reverseRepaired} nat reverse entr(ies) (of ${rep.flowsChecked} flows)${rep.ringsReset ? `; emptied ${rep.ringsReset} replication ring(s) whose head and tail were impossible` : ''}`, { event: 'state_repaired', ...rep });
    region.setWriter(process.pid);
    const reader = new BankReader(region.banks.memory, region.banks.offset, region.state.counters);
    const tables = reader.takeCurrent();
    if (!tables) throw new Error(`the region ${init.region} holds no published tables (the supervisor publishes before it starts a worker)`);
    const dp = new Dataplane(region.state, tables);
    if (init.packetFd !== null) {
      // The ring and its filter are the supervisor's: attach maps them and starts at the oldest
      // frame nobody has read (those that came while no worker ran).
      nic = openAfPacket(init.iface, { fd: init.packetFd, filter: '', batch: init.io.batch, spinUs: init.io.spinUs });
    } else {
      nic = openNic(init.iface, { filter: init.filter, io: init.ownSocket ? 'native' : 'pcap', batch: init.io.batch, spinUs: init.io.spinUs }).nic;
    }
    const link = nic;
    let names = init.names;
    let syn: LiveSynCheck | null = null;
    let synProbes: string | null = null;
    if (init.synCheck) {
      const opened = openProber();
      synProbes = opened.fallbackWhy ? `TCP connect probes (raw SYN probes unavailable: ${opened.fallbackWhy})` : 'raw SYN probes from this host\'s route source address';
      syn = startLiveSynCheck({
        dp, hold: new SynHold(LIVE_HOLD_SLOTS), prober: opened.prober, timeoutMs: init.synCheck.timeoutMs,
        send: (b, n) => link.send(b, n), nameOf: (b) => names[b],
        observer: { observe: (backend, result, at, port) => send({ t: 'probe', backend, port: port ?? 0, result, at }) },
        events: { emit: (type, fields, at) => send({ t: 'event', type, fields, at: at ?? Date.now() }) },
      });
    }
    process.on('message', (m: unknown) => { if (isSupervisorMessage(m) && m.t === 'names') names = m.names; });
    const live = attachLive(link, dp, {
      ...(syn ? { onHold: syn.onHold } : {}),
      poll: () => { const t = reader.poll(); if (t) dp.publish(t); dp.importFlows(IMPORT_PER_BATCH); },
    });
    const timers: NodeJS.Timeout[] = [];
    // Tables published while no frame comes still take effect (the sweep and SYN check read them).
    // A big set is chased a chunk per turn until whole (banks.ts idlePoller).
    const idle = idlePoller(reader, (t) => dp.publish(t));
    timers.push(setInterval(() => {
      idle.poll();
      // With no frames the peers' flows still land (a standby node is mostly idle until a takeover).
      dp.setClock(Date.now());
      dp.importFlows(IMPORT_PER_IDLE);
    }, 100));
    const sweep = sweepPlan(region.state.flowSlots);
    timers.push(setInterval(() => { dp.sweep(Date.now(), sweep.slice); }, sweep.intervalMs));
    timers.push(setInterval(() => {
      const l = live.syncStats();
      if (l.newLinkErrors > 0) log.warn(`${init.iface}: the packet socket reported ${l.lastLinkError ?? 'an error'}; frames flow again once the interface is up`, { event: 'link_error' });
    }, 1000));
    const rt = rtGovernor(init.io.rtPriority ?? 0, log);
    if (rt) timers.push(rt);
    return { region, nic, syn, synProbes, timers, idle, log };
  } catch (e) {
    nic?.close();
    region.close();
    throw e;
  }
}

/**
 * io.rt_priority: the supervisor made this worker SCHED_FIFO; step down to an ordinary task while
 * saturated and back up after (rt-governor.ts says why). Measured on this thread's CPU time per
 * window. Null when there is nothing to govern: no rt_priority, or the supervisor could not make
 * the worker real-time (it said so).
 */
function rtGovernor(priority: number, log: Logger): NodeJS.Timeout | null {
  const cpu = threadCpuClock();
  if (priority <= 0 || !cpu || !scheduling(process.pid)?.startsWith('SCHED_FIFO')) return null;
  let state: RtState = 'realtime', lastCpu = cpu(), lastWall = performance.now(), changes = 0, loggedAt = -Infinity;
  const timer = setInterval(() => {
    const c = cpu(), w = performance.now();
    const next = stepRt(state, (c - lastCpu) / 1e6 / (w - lastWall));
    lastCpu = c; lastWall = w;
    if (next === state) return;
    try {
      setFifo(process.pid, next === 'realtime' ? priority : 0);
    } catch (e) {
      log.warn(`cannot change the packet worker's scheduling (io.rt_priority ${priority}): ${(e as Error).message}; it stays ${state === 'realtime' ? `SCHED_FIFO ${priority}` : 'an ordinary task'}`, { event: 'worker_priority' });
      clearInterval(timer);
      return;
    }
    state = next;
    changes++;
    // A flood that comes and goes would say this every few seconds: at most once a minute.
    if (w - loggedAt >= 60_000) {
      loggedAt = w;
      log.info(next === 'stepped_down'
        ? `packet worker saturated (over ${RT_STEP_DOWN_BUSY * 100} % busy): an ordinary task until its load falls, so the kernel does not throttle it as a real-time one (${changes} change(s) so far)`
        : `packet worker load fell (under ${RT_STEP_UP_BUSY * 100} % busy): real-time again (SCHED_FIFO ${priority}; ${changes} change(s) so far)`, { event: 'worker_rt', state: next, changes });
    }
  }, RT_WINDOW_MS);
  return timer;
}

/** Stop at a batch boundary (this runs between two turns of the loop): the ring keeps what is unread. */
function stopWorker(r: Running): void {
  r.idle.stop();
  for (const t of r.timers) clearInterval(t);
  r.syn?.stop();
  r.nic.close();
  r.region.setWriter(0);
  r.region.close();
}

/** The entry point (spawned by the supervisor with an IPC channel; not a command of its own). */
export function workerMain(): void {
  if (!process.send) {
    process.stderr.write('vipgate: dist/src/app/worker.js is the packet worker; `vipgate run` starts it (it needs the supervisor\'s IPC channel)\n');
    process.exit(2);
  }
  // The supervisor is gone (exit, SIGKILL): a worker must never outlive it (the next vipgate
  // attaches the same ring; two readers would split its frames). The IPC channel closing says
  // so; the kernel's parent-death signal covers a worker too busy to read it. A supervisor that
  // died before the prctl shows as a channel already closed.
  process.on('disconnect', () => process.exit(0));
  try { parentDeathSignal(os.constants.signals.SIGKILL); } catch { /* the addon is missing: attachRegion says so */ }
  if (!process.connected) process.exit(0);
  let running: Running | null = null;
  process.on('uncaughtException', (e) => {
    // Read no more frames meanwhile: the next worker takes the ring from the oldest unread one.
    if (running) try { stopWorker(running); } catch { /* exiting anyway */ }
    running = null;
    fatalExit(`internal error (a bug): ${e.stack ?? String(e)}`, WORKER_EXIT_BUG);
  });
  process.on('message', (m: unknown) => {
    if (!isSupervisorMessage(m)) {
      fatalExit(`unexpected message from the supervisor: ${JSON.stringify(m).slice(0, 200)} (a supervisor of another vipgate build?)`, WORKER_EXIT_FATAL);
      return;
    }
    if (m.t === 'init') {
      if (running) return;
      try {
        running = startWorker(m);
      } catch (e) {
        fatalExit((e as Error).message, WORKER_EXIT_FATAL);
        return;
      }
      send({ t: 'ready', io: running.nic.io, why: running.nic.io === 'native' ? (m.ownSocket ? 'a packet socket of its own (VIPGATE_WORKER_OWN_SOCKET=1: frames are lost while no worker runs)' : 'the supervisor\'s packet socket') : 'its own libpcap capture (frames are lost while no worker runs)', synProbes: running.synProbes });
    } else if (m.t === 'stop') {
      if (running) stopWorker(running);
      process.disconnect();
      process.exit(0);
    }
  });
}

if (require.main === module) workerMain();

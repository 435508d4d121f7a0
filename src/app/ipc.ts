// The messages between the supervisor and its packet worker (JSON over the 'ipc' channel of
// child_process.spawn), and between a running supervisor and the one `vipgate upgrade` starts.
// Every message is checked on arrival (isWorkerMessage, ...): a peer of another build that sends
// something else is reported, never half-understood.

import type { ProbeResult } from '../control/health/types';
import type { IoChoice } from '../../native-bindings/nic';
import type { LogLevel } from '../obs/log';

/** The packet socket's descriptor in the worker: stdio[4] of the spawn (0-2 stdio, 3 the IPC channel). */
export const WORKER_PACKET_FD = 4;

/** What the worker needs to start: everything else it reads from the shared region. */
export interface WorkerInit {
  t: 'init';
  iface: string;
  /** The shared region file (the worker attaches it, checking the header). */
  region: string;
  /** The inherited packet socket (WORKER_PACKET_FD), or null: io pcap, the worker opens its own capture. */
  packetFd: number | null;
  /** pcap only: the capture filter (an inherited socket has its filter already). */
  filter: string;
  /** No socket handed over but io native: open a native socket of its own (VIPGATE_WORKER_OWN_SOCKET, a measurement knob). */
  ownSocket?: boolean;
  /** rtPriority: io.rt_priority (0: none); the worker runs its step-down governor (rt-governor.ts) when > 0. */
  io: { backend: IoChoice; batch: number; spinUs: number; rtPriority: number };
  /** The SYN-time check (the worker holds SYNs and probes; results come back as `probe`). */
  synCheck: { timeoutMs: number } | null;
  /** Backend names by slot, for the SYN-time check's reports (tables in the banks carry no names). */
  names: string[];
  log: { level: LogLevel; format: 'json' | 'text' };
}

export type SupervisorToWorker =
  | WorkerInit
  /** The backend names by slot changed (a publish added a backend). */
  | { t: 'names'; names: string[] }
  /** Finish the batch in hand, give back the ring, exit 0. */
  | { t: 'stop' };

export type WorkerToSupervisor =
  /** Attached to the region and the ring, forwarding. */
  | { t: 'ready'; io: 'native' | 'pcap'; why: string; synProbes: string | null }
  /** A SYN-time probe's result: one more check result for the health manager. */
  | { t: 'probe'; backend: string; port: number; result: ProbeResult; at: number }
  /** A SYN-time check event (aggregate verdicts) for the event log. */
  | { t: 'event'; type: string; fields: Record<string, unknown>; at: number }
  /** The worker cannot go on; it exits right after. */
  | { t: 'fatal'; reason: string };

const isObj = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null && !Array.isArray(m);

export function isWorkerMessage(m: unknown): m is WorkerToSupervisor {
  if (!isObj(m)) return false;
  switch (m.t) {
    case 'ready': return (m.io === 'native' || m.io === 'pcap') && typeof m.why === 'string' && (m.synProbes === null || typeof m.synProbes === 'string');
    case 'probe': return typeof m.backend === 'string' && Number.isInteger(m.port) && isObj(m.result) && typeof m.result.ok === 'boolean' && typeof m.at === 'number';
    case 'event': return typeof m.type === 'string' && isObj(m.fields) && typeof m.at === 'number';
    case 'fatal': return typeof m.reason === 'string';
    default: return false;
  }
}

export function isSupervisorMessage(m: unknown): m is SupervisorToWorker {
  if (!isObj(m)) return false;
  switch (m.t) {
    case 'init': return typeof m.iface === 'string' && typeof m.region === 'string' && (m.packetFd === null || Number.isInteger(m.packetFd)) && isObj(m.io) && Array.isArray(m.names) && isObj(m.log);
    case 'names': return Array.isArray(m.names);
    case 'stop': return true;
    default: return false;
  }
}

// ---- upgrade: the running supervisor (old) and the one it started (new) ----

export type UpgradeToNew =
  /** The old one has stopped its worker and let go of the lock and the API port: take over. */
  | { t: 'released' };

export type UpgradeToOld =
  /** The region checked out; ready to take over once released. */
  | { t: 'checked'; version: string; pid: number }
  /** The region (or anything else) was refused; the new one exits; the old one keeps running. */
  | { t: 'refused'; reason: string }
  /** The new one holds the lock, serves the API and its worker forwards: the old one exits. */
  | { t: 'running'; pid: number };

export function isUpgradeToOld(m: unknown): m is UpgradeToOld {
  if (!isObj(m)) return false;
  switch (m.t) {
    case 'checked': return typeof m.version === 'string' && Number.isInteger(m.pid);
    case 'refused': return typeof m.reason === 'string';
    case 'running': return Number.isInteger(m.pid);
    default: return false;
  }
}

export function isUpgradeToNew(m: unknown): m is UpgradeToNew {
  return isObj(m) && m.t === 'released';
}

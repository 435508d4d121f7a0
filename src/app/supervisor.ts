// The supervisor's composition root (`vipgate run`): everything but the hot loop.
//
//   for the process's whole life   the packet socket (opened here, kept open, handed to each
//                                  worker: frames wait in its ring while no worker runs) and
//                                  the shared region (created, or attached after its checks)
//   while it serves the interface  the instance lock, the kernel filter, the controller and its
//   ("control")                    API, health checks, events, metrics, persistence, ARP
//                                  announcements and backend resolution (sent through our own
//                                  handle on the packet socket; we never read its ring), the
//                                  table banks' writer, and the packet worker (workers.ts)
//
// Control can be let go of and taken back without touching the socket or the region: that is
// how `vipgate upgrade` hands over to a new build (the old one lets go; if the new one fails
// before it forwards, the old one takes control back).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Config } from '../control/config';
import { loadRunSettings, describeRunSettings, RunSettings } from '../control/run-config';
import { VipgateError } from '../control/errors';
import { KernelFilter } from '../control/kernel-filter';
import { acquireInstanceLock } from '../control/instance-lock';
import { Announcer, BackendResolver } from '../control/arp-tasks';
import { Controller, Applied, ControlPort, checkTypesUsed } from '../control/controller';
import { startApiServer, ApiServer } from '../control/api';
import { ApiError, type ClusterView } from '../control/api-types';
import { checkStateDir } from '../control/store';
import { interfaceInfo, missingCapabilities, InterfaceInfo } from '../link/host';
import { captureFilter } from '../link/live';
import { checkNicBinding, openNic, NicLink } from '../../native-bindings/nic';
import { openAfPacket } from '../../native-bindings/afpacket';
import { snapshotCounters } from '../dataplane/counters';
import { FlowTable } from '../dataplane/flows';
import { NeighbourTable } from '../dataplane/neighbours';
import { newClock } from '../dataplane/state';
import { Tables } from '../tables/services';
import { formatCounters, formatRateLine } from '../obs/format';
import { createLogger, Logger } from '../obs/log';
import { createMetrics } from '../obs/metrics';
import { formatIpv4, parseIpv4 } from '../wire/addr';
import { VERSION } from '../cli/version';
import { HealthManager } from '../control/health/manager';
import { EventLog } from '../control/health/events';
import { tcpProbe, httpProbe, Probe } from '../control/health/probes';
import type { CheckType } from '../control/config/health';
import { openProber } from '../control/health/syn-probe';
import { openRegion, attachRegion, regionPath, type Region } from '../shm/region';
import { shmPages, describePages } from '../shm/pages';
import { BankWriter, banksSize } from '../shm/banks';
import { WorkerManager, launchWorker, workerOwnsSocket, OWN_SOCKET_ENV } from './workers';
import { WORKER_PACKET_FD, isUpgradeToNew, isUpgradeToOld, type UpgradeToOld } from './ipc';
import { ClusterNode } from '../control/cluster/node';

export interface SupervisorArgs {
  config: string;
  iface?: string;
  kernelFilter: boolean;
  statsIntervalMs: number;
  /** Write the counters as JSON here every second and at exit (atomically: write, rename). */
  statusFile?: string;
  /** Hash seed of a new region (an existing region's seed wins: its flows are hashed with it). */
  seed?: number;
  /** Where log lines go (one line per call, no newline). */
  log: (s: string) => void;
  /** HOST:PORT for the API (else the config's api.listen). */
  apiListen?: string;
  /** Else the config's state_file. */
  stateFile?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  logFormat?: 'json' | 'text';
  /** Discard an existing shared region (every flow in it) instead of attaching it. */
  freshState: boolean;
  /** Started by `vipgate upgrade` from a running vipgate (packet socket on fd 4, the old one on the IPC channel). */
  takeover: boolean;
  /** `vipgate run`'s arguments as given: an upgrade starts the new build with them. */
  argv: string[];
}

export interface Supervisor {
  controller(): Controller;
  log: Logger;
  info: InterfaceInfo;
  region: Region;
  /** Stop the worker (drained), remove the kernel rule, close everything; resolves `done`. Idempotent. The region file stays. */
  stop(): void;
  /** A bug in the supervisor: kill the worker and remove the kernel rule now, synchronously (the process exits next). */
  abort(): void;
  /** Resolves once stopped (or handed over to a new build). */
  done: Promise<void>;
}

/** How long a worker may take to stop when asked before it is killed (ms). */
const WORKER_STOP_MS = 3000;
/** How long an upgrade waits for the new build to start and check the shared state (ms); this one forwards meanwhile. */
const UPGRADE_STEP_MS = 30_000;
/**
 * How long the new build has to forward once this one has let go (ms). Nothing forwards
 * meanwhile, so not long: its first worker is already started (it takes ~0.15 s here), and a
 * failed hand-over taken back within a few seconds is one TCP retransmission or two.
 */
const HANDOVER_MS = 3000;

export async function startSupervisor(a: SupervisorArgs): Promise<Supervisor> {
  const settings = loadRunSettings(a.config, { apiListen: a.apiListen, stateFile: a.stateFile });
  checkNicBinding(settings.config.io.backend);
  const config: Config = settings.config;
  const log = createLogger({
    level: a.logLevel ?? config.log.level, format: a.logFormat ?? config.log.format,
    stream: { write: (line: string) => a.log(line.replace(/\n$/, '')) },
  });
  const iface = a.iface ?? config.interface;
  if (!iface) throw new VipgateError('ERUN_NO_INTERFACE', `${a.config}: no interface to attach to: add interface: eth0 (the NIC facing the clients) to the config, or pass --interface`);
  const info = interfaceInfo(iface);
  const missing = missingCapabilities(a.kernelFilter);
  if (missing.length) {
    throw new VipgateError('ERUN_PERMISSION',
      `vipgate run needs ${missing.join(' and ')}; run it as root, or give node the capabilities ` +
      `(setcap cap_net_raw,cap_net_admin+ep "$(readlink -f "$(command -v node)")"), or in docker use --cap-add NET_RAW --cap-add NET_ADMIN`);
  }
  if (!info.up) log.warn(`${iface} is down; vipgate will see nothing until it is up (ip link set ${iface} up)`);
  if (settings.stateFile) checkStateDir(settings.stateFile);
  if (a.statusFile) checkStatusFile(a.statusFile);
  const macText = config.macText ?? info.macText;
  const filter = captureFilter(macText, info.ipv4.map(formatIpv4));
  const file = regionPath(iface, config.shmDir);

  if (a.takeover) {
    const old = await takeoverCheck(iface, file, config, filter, log);
    return startHost(a, settings, log, iface, info, filter, file, old);
  }
  return startHost(a, settings, log, iface, info, filter, file, null);
}

/**
 * The new side of an upgrade, before it takes anything: attach the packet socket handed over,
 * check the region's header (the old worker still forwards: nothing is written), say `checked`,
 * and wait until the old one has let go. Anything that fails here is sent back as `refused`: the
 * old one keeps running untouched.
 */
async function takeoverCheck(iface: string, file: string, config: Config, filter: string, log: Logger): Promise<{ nic: NicLink; spare: ChildProcess }> {
  const toOld = (m: UpgradeToOld) => { if (process.connected) process.send!(m, undefined, undefined, () => { /* gone: the wait below says so */ }); };
  if (!process.send) throw new VipgateError('ERUN_TAKEOVER', '--takeover is for `vipgate upgrade`, which starts the new vipgate with it; start vipgate without it');
  let nic: NicLink;
  try {
    const r = attachRegion(file);
    const sh = r.shape;
    r.close();
    // What openRegion would refuse once the old one has let go, refused now while it still serves.
    const differs = [
      sh.iface !== iface && `interface ${sh.iface} in the file, ${iface} here`,
      sh.flowCapacity !== config.flows.capacity && `flow capacity ${sh.flowCapacity} in the file, ${config.flows.capacity} in the config`,
      sh.neighbourCapacity !== config.neighbours.capacity && `neighbour capacity ${sh.neighbourCapacity} in the file, ${config.neighbours.capacity} in the config`,
    ].filter(Boolean);
    if (differs.length) throw new VipgateError('ESHM_MISMATCH', `shared state ${file}: ${differs.join('; ')}; an upgrade keeps the shared state: keep its shape (or stop vipgate and start it with --fresh-state, cutting every flow)`);
    nic = config.io.backend === 'pcap' ? openNic(iface, { filter, io: 'pcap' }).nic : openAfPacket(iface, { fd: WORKER_PACKET_FD, filter: '' });
  } catch (e) {
    toOld({ t: 'refused', reason: (e as Error).message });
    throw e;
  }
  // Our first worker, started now so that its start-up (Node's, the code's) is not part of the
  // hand-over: it waits for init until the old one has let go.
  const spare = launchWorker(nic);
  log.info(`upgrade: the region ${file} checks out; waiting for the running vipgate to let go`, { event: 'upgrade_checked' });
  const released = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new VipgateError('ERUN_TAKEOVER', `upgrade: the running vipgate did not let go within ${UPGRADE_STEP_MS / 1000} s; it keeps serving`)), UPGRADE_STEP_MS);
    process.on('message', (m: unknown) => { if (isUpgradeToNew(m)) { clearTimeout(timer); resolve(); } });
    process.once('disconnect', () => { clearTimeout(timer); reject(new VipgateError('ERUN_TAKEOVER', 'upgrade: the running vipgate went away before it let go')); });
  });
  toOld({ t: 'checked', version: VERSION, pid: process.pid });
  try {
    await released;
  } catch (e) {
    spare.kill('SIGKILL');
    nic.close();
    throw e;
  }
  return { nic, spare };
}

interface Control {
  controller: Controller;
  api: ApiServer;
  workers: WorkerManager;
  cluster: ClusterNode | null;
  /** Stop the worker (drained) and everything of control; keepFilter: an upgrade's new build takes the kernel rule over. */
  release(o: { keepFilter: boolean }): Promise<void>;
  /** Synchronous: kill the worker, remove the kernel rule. */
  abort(): void;
}

async function startHost(a: SupervisorArgs, settings: RunSettings, log: Logger, iface: string, info: InterfaceInfo, filter: string, file: string,
  handed: { nic: NicLink; spare: ChildProcess } | null): Promise<Supervisor> {
  const { config } = settings;
  let lock = acquireInstanceLock(iface);
  let region: Region;
  let nic: NicLink;
  try {
    if (a.freshState && fs.existsSync(file)) log.warn(`--fresh-state: discarding the shared state in ${file}: every flow it held is forgotten`, { event: 'fresh_state', file });
    region = openRegion({
      path: file, fresh: a.freshState, version: VERSION, banksBytes: banksSize(),
      shape: { iface, flowCapacity: config.flows.capacity, neighbourCapacity: config.neighbours.capacity, seed: a.seed ?? 0x9e3779b9 },
      timeouts: {
        halfOpenTimeoutMs: config.flows.halfOpenTimeoutMs, establishedTimeoutMs: config.flows.establishedTimeoutMs,
        closingTimeoutMs: config.flows.closingTimeoutMs, neighbourTtlMs: config.neighbours.ttlMs,
      },
    });
  } catch (e) {
    handed?.spare.kill('SIGKILL');
    handed?.nic.close();
    lock.release();
    throw e;
  }
  log.info(region.created
    ? `shared state: created ${file} (${region.bytes} bytes, layout ${region.layoutVersion})`
    : `shared state: attached ${file} (${region.bytes} bytes, layout ${region.layoutVersion}, created ${new Date(region.createdAt).toISOString()} by vipgate ${region.createdBy}): its flows continue`,
  { event: 'shared_state', file, created: region.created });
  if (region.replaced) log.warn(`shared state: ${file} was replaced: ${region.replaced}`, { event: 'shared_state_replaced' });
  const slots = region.created ? (removeSlots(file), null) : readSlots(file, log);
  let ioWhy = 'the packet socket handed over by the vipgate upgraded from';
  try {
    if (handed) nic = handed.nic;
    else ({ nic, why: ioWhy } = openNic(iface, { filter, io: config.io.backend, batch: config.io.batch, spinUs: config.io.spinUs }));
  } catch (e) {
    region.close();
    lock.release();
    throw e;
  }
  log.info(nic.io === 'native'
    ? `packet I/O: native (${ioWhy}): batches of up to ${config.io.batch} frames, polling ${config.io.spinUs} µs after the last frame; ` +
      (workerOwnsSocket(nic) ? `each worker opens a socket of its own (${OWN_SOCKET_ENV}=1, a measurement knob): frames that arrive while no worker runs are lost` : 'the ring keeps frames while no worker runs')
    : `packet I/O: pcap (${ioWhy}): one frame per call; the packet worker opens its own capture, so frames that arrive while no worker runs (a crash, an upgrade) are lost`, { event: 'io', io: nic.io });
  if (config.io.rtPriority > 0) {
    log.info(`packet worker: real-time (SCHED_FIFO ${config.io.rtPriority}, io.rt_priority): a frame's wake-up preempts control and every ordinary task on its CPU; under a flood it keeps that CPU, so give control another one (README "A real-time packet worker")`, { event: 'worker_priority', rtPriority: config.io.rtPriority });
  }

  // ---- vipgate upgrade (the old side): defined before control starts, which serves it on the API ----
  let control!: Control;
  let stopped = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  let hostClosed = false;
  const closeHost = () => {
    if (hostClosed) return;
    hostClosed = true;
    nic.close();
    region.close();
    resolveDone();
  };
  let upgrading: ChildProcess | null = null;
  const upgrade = async (body: unknown): Promise<unknown> => {
    if (upgrading) throw new ApiError('EAPI_CONFLICT', `an upgrade is already running (new vipgate PID ${upgrading.pid}); wait for it to finish`);
    if (stopped) throw new ApiError('EAPI_CONFLICT', 'vipgate is stopping');
    const target = upgradeTarget(body);
    const child = spawn(process.execPath, [target.bin, 'run', ...a.argv.filter((x) => x !== '--fresh-state' && x !== '--takeover'), '--takeover'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', nic.fd ?? 'ignore'], detached: true,
    });
    upgrading = child;
    child.on('error', (e) => log.error(`upgrade: the new vipgate process: ${e.message}`, { event: 'upgrade_error' }));
    log.info(`upgrade: started vipgate ${target.version} (${target.bin}), PID ${child.pid}`, { event: 'upgrade_started', pid: child.pid, to: target.bin });
    const msgs: UpgradeToOld[] = [];
    let wake: (() => void) | null = null;
    let exited: string | null = null;
    child.on('message', (m: unknown) => { if (isUpgradeToOld(m)) { msgs.push(m); wake?.(); } });
    child.on('exit', (code, sig) => { exited = sig ? `killed by ${sig}` : `exit code ${code}`; wake?.(); });
    const next = async (what: string, ms = UPGRADE_STEP_MS): Promise<UpgradeToOld> => {
      const until = Date.now() + ms;
      while (!msgs.length && !exited && Date.now() < until) await new Promise<void>((r) => { wake = r; setTimeout(r, 250); });
      wake = null;
      const m = msgs.shift();
      if (m) return m;
      throw new Error(exited ? `the new vipgate exited (${exited}) before it could ${what}` : `the new vipgate did not ${what} within ${ms / 1000} s`);
    };
    const fail = (why: string): never => {
      upgrading = null;
      if (!exited) child.kill('SIGTERM');
      log.error(`upgrade refused: ${why}; this vipgate keeps serving`, { event: 'upgrade_refused' });
      throw new ApiError('EAPI_CONFLICT', `upgrade to ${target.bin} refused: ${why}; the running vipgate (PID ${process.pid}) keeps serving`);
    };
    let first: UpgradeToOld;
    try { first = await next('check the shared state'); } catch (e) { return fail((e as Error).message); }
    if (first.t === 'refused') return fail(first.reason);
    if (first.t !== 'checked') return fail(`unexpected message ${first.t}`);
    // Answer the API call first; let go right after (closing the API cuts its connections).
    setTimeout(() => { void handOver(child, next, () => exited); }, 100);
    return { from: { version: VERSION, pid: process.pid }, to: { version: first.version, pid: first.pid } };
  };

  const handOver = async (child: ChildProcess, next: (what: string, ms?: number) => Promise<UpgradeToOld>, exited: () => string | null) => {
    log.info('upgrade: stopping the packet worker and letting go of the interface', { event: 'upgrade_release' });
    await control.release({ keepFilter: true });
    lock.release();
    child.send({ t: 'released' }, () => { /* a channel already closed shows as its exit */ });
    try {
      const m = await next('forward', HANDOVER_MS);
      if (m.t !== 'running') throw new Error(m.t === 'refused' ? m.reason : `unexpected message ${m.t}`);
      log.info(`upgrade: vipgate PID ${m.pid} forwards; this one exits`, { event: 'upgrade_done', pid: m.pid });
      stopped = true;
      child.disconnect();
      child.unref();
      closeHost();
    } catch (e) {
      if (stopped) return; // SIGTERM meanwhile: nothing to take back
      // The new one failed after we let go: take the interface back (same socket, same region).
      log.error(`upgrade failed: ${(e as Error).message}; taking the interface back`, { event: 'upgrade_failed' });
      if (!exited()) {
        // Its lock goes with it: wait for that before taking it back.
        const gone = new Promise<void>((r) => { child.once('exit', () => r()); setTimeout(r, 3000); });
        child.kill('SIGKILL');
        await gone;
      }
      upgrading = null;
      try {
        lock = acquireInstanceLock(iface);
        control = await startControl(a, settings, log, iface, info, filter, region, nic, lock, upgrade, slots);
      } catch (e2) {
        log.error(`cannot take the interface back: ${(e2 as Error).message}; exiting`, { event: 'upgrade_fatal' });
        stopped = true;
        closeHost();
      }
    }
  };
  try {
    control = await startControl(a, settings, log, iface, info, filter, region, nic, lock, upgrade, slots, handed?.spare);
  } catch (e) {
    nic.close();
    region.close();
    lock.release();
    throw e;
  }

  const sup: Supervisor = {
    controller: () => control.controller, log, info, region,
    stop() {
      if (stopped) return;
      stopped = true;
      upgrading?.kill('SIGTERM');
      void control.release({ keepFilter: false }).finally(() => {
        log.info(`vipgate stopped; counters: ${formatCounters(snapshotCounters(region.state.counters)).replace(/\s*\n\s*/g, '; ')}; the shared state stays in ${file} for the next start (--fresh-state discards it)`, { event: 'stopped' });
        closeHost();
      });
    },
    abort() { control.abort(); },
    done,
  };

  return sup;
}

/** The upgrade target from the API body: a vipgate launcher (bin/vipgate.js), a checkout, or a dist/ directory. */
function upgradeTarget(body: unknown): { bin: string; version: string } {
  const to = (body as { to?: unknown } | null)?.to;
  if (typeof to !== 'string' || !path.isAbsolute(to)) throw new ApiError('EAPI_INVALID', 'to: the absolute path of the new build\'s bin/vipgate.js (or its checkout, or its dist/ directory)', 'to');
  const candidates = [to, path.join(to, 'bin', 'vipgate.js'), path.join(to, 'src', 'cli', 'main.js'), path.join(to, 'dist', 'src', 'cli', 'main.js')];
  const bin = candidates.find((c) => { try { return fs.statSync(c).isFile(); } catch { return false; } });
  if (!bin) throw new ApiError('EAPI_INVALID', `to: ${to} does not exist or holds no vipgate build (no bin/vipgate.js, dist/src/cli/main.js); build it first (npm ci)`, 'to');
  // A dist/src/cli/main.js has no launcher of its own: run it through a one-line one.
  const launcher = bin.endsWith(path.join('cli', 'main.js')) ? ensureLauncher(bin) : bin;
  const r = spawnSync(process.execPath, [launcher, 'version'], { encoding: 'utf8', timeout: 10_000 });
  const version = (r.stdout ?? '').trim();
  if (r.status !== 0 || !/^\d+\.\d+\.\d+\S*$/.test(version)) {
    throw new ApiError('EAPI_INVALID', `to: ${bin} is not a vipgate build (\`node ${launcher} version\` ${r.status !== 0 ? `failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n')[0]}` : `printed ${JSON.stringify(version.slice(0, 60))}`})`, 'to');
  }
  return { bin: launcher, version };
}

/** A launcher next to a bare dist/src/cli/main.js (`vipgate upgrade --to /opt/vipgate-2/dist`). */
function ensureLauncher(main: string): string {
  const f = path.join(path.dirname(main), 'vipgate-launch.js');
  if (!fs.existsSync(f)) fs.writeFileSync(f, '#!/usr/bin/env node\n\'use strict\';\nrequire(\'./main.js\').main(process.argv.slice(2));\n', { mode: 0o755 });
  return f;
}

/** Everything that serves the interface while this process holds its lock (see the top of the file). */
async function startControl(a: SupervisorArgs, settings: RunSettings, log: Logger, iface: string, info: InterfaceInfo, filter: string,
  region: Region, nic: NicLink, lock: ReturnType<typeof acquireInstanceLock>, upgrade: (body: unknown) => Promise<unknown>, slots: string[] | null, spare?: ChildProcess): Promise<Control> {
  const { config, apiListen, token, stateFile } = settings;
  const state = region.state;
  // Which pages the region sits on: read once, said in the log and in every status.
  const shmDir = path.dirname(region.path);
  const pages = shmPages(shmDir);
  const pagesText = describePages(region.path, pages);
  if (pages && pages.fsType !== 'tmpfs' && pages.fsType !== 'ramfs') {
    log.warn(`shared state: ${shmDir} is on ${pages.fsType}, not a tmpfs: the kernel writes its pages back to that device; use a tmpfs (/dev/shm, or one mounted for it)`, { event: 'shared_state_pages', fs: pages.fsType });
  } else if (pages && !pages.hugePages && config.flows.capacity >= 1 << 20) {
    log.info(`shared state on ${pagesText}: with ${config.flows.capacity} flows, a tmpfs mounted with huge=within_size and shm_dir: pointing at it puts the flow table on 2 MiB pages, fewer page walks per lookup (README "Huge pages for the shared state")`, { event: 'shared_state_pages', huge: false });
  } else {
    log.info(`shared state on ${pagesText}`, { event: 'shared_state_pages', huge: pages?.hugePages ?? null });
  }
  // Health probes of type syn need the raw prober here; the SYN-time check runs in the worker (its own).
  const checkTypes = checkTypesUsed(config);
  const opened = checkTypes.includes('syn') ? openProber() : null;
  const PROBES: Partial<Record<CheckType, Probe>> = {
    tcp: tcpProbe, http: httpProbe,
    ...(opened ? { syn: (target, check) => opened.prober.probe(parseIpv4(target.ip)!, target.port, check.timeoutMs) } : {}),
  };
  const noProbe = checkTypes.filter((ty) => !PROBES[ty]);
  if (noProbe.length) {
    opened?.prober.close();
    throw new VipgateError('ECONFIG_INVALID', `${a.config}: health checks of type ${noProbe.join(', ')} are not available in this build of vipgate; use type: tcp or type: http`);
  }
  const mac = config.mac ?? info.mac;

  // The controller publishes into the banks; the worker takes them at its next batch.
  const writer = new BankWriter(region.banks.memory, region.banks.offset);
  let published: Tables | null = null;
  let flushTimer: NodeJS.Timeout | null = null;
  let workers: WorkerManager | null = null;
  let slotsWritten = slots?.join('\n') ?? null;
  const clock = newClock();
  const port: ControlPort = {
    // The supervisor's own packet clock (state.ts PacketClock): the resolver's neighbour lookups age
    // entries against control's time; the flow table is only read here (accessors: lookups would expire).
    state, flows: new FlowTable(state, clock), neighbours: new NeighbourTable(state, clock),
    get tables() { return published; },
    ...(slots ? { slots } : {}),
    publish(t) {
      // The slot map first: a supervisor killed between the two must never leave published tables
      // (and flows on their new slots) that the next supervisor would map to other names.
      if (t.backendNames.join('\n') !== slotsWritten) {
        writeSlots(region.path, t.backendNames, log);
        slotsWritten = t.backendNames.join('\n');
      }
      const now = writer.publish(t);
      published = t;
      if (!now && !flushTimer) {
        // The worker has not yet taken the previous generation: retry every ms until it has.
        flushTimer = setInterval(() => { if (writer.flush()) { clearInterval(flushTimer!); flushTimer = null; } }, 1);
      }
      workers?.names([...t.backendNames]);
    },
  };

  const hooks: Array<(x: Applied) => void> = [];
  const events = new EventLog({ config: config.events, log: (level, msg, fields) => log[level](msg, fields) });
  const health = new HealthManager({ probes: PROBES, events });
  workers = new WorkerManager({
    log, iface, region: region.path, nic, filter,
    io: { backend: config.io.backend, batch: config.io.batch, spinUs: config.io.spinUs, rtPriority: config.io.rtPriority },
    synCheck: config.synCheck ? { timeoutMs: config.synCheck.timeoutMs } : null,
    logOptions: { level: a.logLevel ?? config.log.level, format: a.logFormat ?? config.log.format },
    names: () => [...(published?.backendNames ?? [])],
    probe: (m) => health.observe(m.backend, m.result, m.at, m.port),
    event: (m) => events.emit(m.type, m.fields, m.at),
    readerGone: () => writer.readerGone(),
    ...(spare ? { spare } : {}),
  });
  const controller = new Controller({
    config, port, mac, stateFile, version: VERSION, iface, health, events,
    log: (level, msg, fields) => log[level](msg, fields),
    onApplied: (x) => { for (const h of hooks) h(x); },
    runtime: () => ({ worker: workers!.view(), sharedState: { file: region.path, bytes: region.bytes, pages: pagesText, hugePages: pages?.hugePages ?? false, layoutVersion: region.layoutVersion, createdAt: new Date(region.createdAt).toISOString(), createdBy: region.createdBy } }),
  });
  for (const w of controller.restoreWarnings) log.warn(w, { event: 'state_restore' });
  // A cluster node answers ARP only for what the ownership rule gives it, and nothing until it
  // has caught up with its peers' flows: say so in the tables before the worker reads them.
  const cl = config.cluster;
  const clusterKey = settings.clusterKey; // read and checked with the config (run-config.ts)
  if (clusterKey?.warning) log.warn(clusterKey.warning, { event: 'cluster_key' });
  if (cl) controller.setOwnership({ arpVips: [], cluster: true });
  if (stateFile) log.info(`state file ${stateFile}: generation ${controller.generation}, ${controller.registrations().length} registered backend(s) restored`, { event: 'state_restore' });

  const owned = (): number[] => controller.tables.spec.vips;
  let cluster: ClusterNode | null = null;
  /** What this node announces: every VIP, or in a cluster what it owns now. */
  const announced = (): number[] => (cl ? (cluster?.ownedList() ?? []) : owned());
  const clusterView = (): ClusterView => cluster?.view() ?? { enabled: false };
  const natBackends = (): number[] => config.mode === 'nat' ? controller.tables.spec.backends.map((b) => b.ip) : [];
  const closeControl = () => { opened?.prober.close(); health.stop(); events.close(); };
  const kf = a.kernelFilter ? new KernelFilter({ iface, owned: owned(), backends: natBackends(), hostAddrs: info.ipv4 }, lock) : null;
  let api: ApiServer;
  try {
    kf?.install();
    const metrics = createMetrics({
      counters: state.counters, flowCapacity: state.flowCapacity, api: controller,
      health: { checkCounts: () => health.checkCounts(), typeCounts: () => events.typeCounts(), hookStats: () => events.hookStats() },
      ...(cl ? { cluster: clusterView } : {}),
    });
    api = await startApiServer({
      listen: apiListen, token, api: controller, metrics: () => metrics.text(), upgrade, cluster: clusterView,
      log: (level, msg, fields) => log[level](msg, fields),
    });
  } catch (e) {
    kf?.remove();
    closeControl();
    throw e;
  }

  log.info(describeRunSettings(settings).replace(/\n\s*/g, '; '));
  log.info(`instance lock ${lock.file} (one vipgate per interface; held until exit)`, { event: 'locked', lock: lock.file });
  log.info(kf ? `kernel filter: ${kf.describe()}` : 'kernel filter: off (--no-kernel-filter): make sure this host\'s kernel drops VIP traffic itself');
  log.info(`API on http://${api.address}/v1 (${token ? 'bearer token required' : 'no token: loopback only'}), metrics on /metrics`, { event: 'api', address: api.address });
  if (opened?.fallbackWhy) log.info(`syn health checks: TCP connects (raw SYN probes unavailable: ${opened.fallbackWhy})`, { event: 'syn_probe' });

  // The packet worker: a process of its own on the socket and the region. "attached" is said
  // once it forwards (scripts wait for that line).
  workers.start((m) => {
    if (config.synCheck) {
      log.info(`SYN-time check: max_age ${config.synCheck.maxAgeMs} ms, probe timeout ${config.synCheck.timeoutMs} ms, on_fail ${config.synCheck.onFail}, ${m.synProbes ?? 'no prober'}`, { event: 'syn_check' });
    }
    log.info(`attached to ${iface} (mac ${config.macText ?? info.macText + ' (the NIC\'s)'}, mtu ${info.mtu}), capture filter: ${filter}`, { event: 'attached', interface: iface });
    if (a.takeover && process.connected) process.send!({ t: 'running', pid: process.pid }, undefined, undefined, () => { if (process.connected) process.disconnect(); });
  });

  const send = (f: Buffer) => nic.send(f, f.length);
  const announcer = new Announcer(send, state.counters, (ip) => controller.tables.vipIndex(ip) >= 0 && (!cl || (cluster?.owns(ip) ?? false)));
  announcer.announce(mac, announced(), config.announce.count, config.announce.intervalMs);
  if (cl && clusterKey) {
    try {
      cluster = await ClusterNode.start({
        cfg: cl, key: clusterKey.key, state, journal: state.journal, imports: state.imports,
        addresses: () => controller.tables.spec.vips, natGateway: config.natGateway,
        placement: () => controller.vipPlacement(),
        down: () => controller.backends().filter((b) => b.health.state === 'down').map((b) => parseIpv4(b.ip)!),
        workerPid: () => workers!.view().pid,
        apply: (ips) => controller.setOwnership({ arpVips: ips, cluster: true }),
        announce: (ips) => announcer.announceOnce(mac, ips),
        emit: (type, fields, at) => events.emit(type, fields, at),
        peerBack: (addr) => flushNeighbour(addr, log),
        log,
      });
    } catch (e) {
      announcer.stop();
      workers.kill();
      kf?.remove();
      await api.close();
      closeControl();
      throw e;
    }
  }
  const senderIp = () => config.natGateway ?? info.ipv4[0] ?? 0;
  const resolver = new BackendResolver(send, state, port.neighbours, senderIp);
  resolver.tick(controller.tables, Date.now());
  hooks.push((x) => {
    if (x.vipsAdded.length) {
      announcer.announce(mac, x.vipsAdded, config.announce.count, config.announce.intervalMs); // in a cluster: those it owns (the announcer checks)
      log.info(cl ? `added ${x.vipsAdded.map(formatIpv4).join(', ')} (answered and announced by the node the cluster's rule gives them to)` : `announcing ${x.vipsAdded.map(formatIpv4).join(', ')}`, { event: 'vips_added', vips: x.vipsAdded.map(formatIpv4) });
    }
    if (x.vipsRemoved.length) log.info(`no longer answering for ${x.vipsRemoved.map(formatIpv4).join(', ')}`, { event: 'vips_removed', vips: x.vipsRemoved.map(formatIpv4) });
    if (kf && (x.vipsAdded.length || x.vipsRemoved.length || (config.mode === 'nat' && x.backendIpsChanged))) {
      try { kf.update(owned(), natBackends()); } catch (e) { log.error((e as Error).message, { event: 'kernel_filter_failed' }); }
    }
    resolver.tick(x.tables, Date.now());
  });

  const timers: NodeJS.Timeout[] = [];
  timers.push(setInterval(() => {
    const now = Date.now();
    resolver.tick(controller.tables, now);
    controller.tick(now);
  }, 1000));
  timers.push(setInterval(() => {
    const now = Date.now();
    health.tick(now);
    controller.healthTick(now);
  }, 10));
  if (config.announce.refreshMs > 0) timers.push(setInterval(() => announcer.announce(mac, announced(), 1, 0), config.announce.refreshMs));
  if (a.statsIntervalMs > 0) {
    let prev = snapshotCounters(state.counters);
    timers.push(setInterval(() => {
      const cur = snapshotCounters(state.counters);
      log.info(formatRateLine(prev, cur, a.statsIntervalMs / 1000), { event: 'stats' });
      prev = cur;
    }, a.statsIntervalMs));
  }
  const writeStatus = statusWriter(a.statusFile, log, () => ({
    time: Date.now(), interface: iface, mode: config.mode, generation: controller.generation, ...snapshotCounters(state.counters),
    vips: controller.vips().map((v) => v.vip), backends: controller.backends(), worker: workers!.view(),
  }));
  if (a.statusFile) { writeStatus(); timers.push(setInterval(writeStatus, 1000)); }

  let released: Promise<void> | null = null;
  return {
    controller, api, workers, cluster,
    abort() {
      cluster?.stop();
      workers!.kill();
      try { kf?.remove(); } catch { /* already handed over (upgrade): not ours to remove */ }
    },
    release(o) {
      released ??= (async () => {
        for (const t of timers) clearInterval(t);
        // A stop says goodbye (its peers take its VIPs at once, not after dead_after); an upgrade
        // does not: the new build is back within dead_after and catches up.
        cluster?.stop({ goodbye: !o.keepFilter });
        if (flushTimer) clearInterval(flushTimer);
        closeControl();
        announcer.stop();
        await workers!.stop(WORKER_STOP_MS);
        if (!o.keepFilter) kf?.remove();
        writeStatus();
        await api.close();
        if (!o.keepFilter) lock.release();
      })();
      return released;
    },
  };
}

// The backend names by slot, beside the region (<region>.slots): flows record their backend by
// slot, so a new supervisor on the same region (a whole restart, an upgrade) must give every
// backend the slot it had. Written (write, rename) only when the assignment changes.
const slotsFile = (region: string) => `${region}.slots`;

function writeSlots(region: string, names: readonly string[], log: Logger): void {
  const f = slotsFile(region), tmp = `${f}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, JSON.stringify({ names }) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, f);
  } catch (e) {
    log.error(`cannot write ${f} (${(e as Error).message}): after a restart, flows to backends added since may go to the wrong slot`, { event: 'slots_write_failed' });
  }
}

function readSlots(region: string, log: Logger): string[] | null {
  const f = slotsFile(region);
  try {
    const j = JSON.parse(fs.readFileSync(f, 'utf8')) as { names?: unknown };
    if (Array.isArray(j.names) && j.names.every((n) => typeof n === 'string')) return j.names as string[];
    throw new Error('it holds no list of names');
  } catch (e) {
    log.warn(`shared state: cannot read the backend slots of the previous run from ${f} (${(e as Error).message}); ` +
      'backends get slots in config order: flows to backends added or removed through the API may break', { event: 'slots_unknown' });
    return null;
  }
}

function removeSlots(region: string): void {
  try { fs.unlinkSync(slotsFile(region)); } catch { /* none */ }
}

/**
 * Remove the kernel's neighbour entry for `addr` (a cluster peer heard again after it was declared
 * dead), so that our next heartbeat to it resolves its MAC at once instead of waiting for the
 * kernel's ARP retry timer. Best effort: `ip` missing or failing is logged once, never fatal.
 */
let flushFailed = false;
function flushNeighbour(addr: string, log: Logger): void {
  const p = spawn('ip', ['-4', 'neigh', 'flush', 'to', addr], { stdio: 'ignore' });
  const fail = (why: string) => {
    if (flushFailed) return;
    flushFailed = true;
    log.warn(`cluster: cannot clear the kernel's neighbour entry for ${addr} (ip neigh flush: ${why}); after a link cut, heartbeats may wait up to a second for ARP`, { event: 'cluster_neigh_flush_failed' });
  };
  p.on('error', (e) => fail(e.message));
  p.on('exit', (code) => { if (code !== 0) fail(`exit code ${code}`); });
}

/** The status file writer: atomically (write, rename); says once when it starts failing and when it recovers. */
function statusWriter(file: string | undefined, log: Logger, body: () => unknown): () => void {
  let failing = false;
  return () => {
    if (!file) return;
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(body()) + '\n');
      fs.renameSync(tmp, file);
      if (failing) log.info(`the status file ${file} is written again`, { event: 'status_file' });
      failing = false;
    } catch (e) {
      if (!failing) log.warn(`cannot write the status file ${file}: ${(e as Error).message}; retrying every second`, { event: 'status_file_failed' });
      failing = true;
      try { fs.unlinkSync(tmp); } catch { /* not created */ }
    }
  };
}

/** At start: the status file can be written (a writable directory, not a directory itself), or say why. */
function checkStatusFile(file: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new Error('it is a directory');
    fs.writeFileSync(tmp, '');
    fs.unlinkSync(tmp);
  } catch (e) {
    throw new VipgateError('ERUN_STATUS_FILE',
      `--status-file ${file}: cannot write it (${(e as Error).message}); give a file path in a writable directory, e.g. /run/vipgate/status.json`);
  }
}

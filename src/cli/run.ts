// `vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval S] [--api ADDR] [--state-file F]`
// Attach to a live NIC and run the packet path until SIGINT/SIGTERM, with the controller and
// its runtime API beside it. SIGHUP reloads the config.

import * as fs from 'node:fs';
import { Config } from '../control/config';
import { loadRunSettings, describeRunSettings, RunSettings } from '../control/run-config';
import { VipgateError } from '../control/errors';
import { KernelFilter } from '../control/kernel-filter';
import { acquireInstanceLock, InstanceLock } from '../control/instance-lock';
import { Announcer, BackendResolver } from '../control/arp-tasks';
import { Controller, Applied } from '../control/controller';
import { startApiServer, ApiServer } from '../control/api';
import { checkStateDir } from '../control/store';
import { buildDataplane, Built } from '../main';
import { interfaceInfo, missingCapabilities, InterfaceInfo } from '../link/host';
import { attachLive, captureFilter, sweepPlan } from '../link/live';
import { checkNicBinding, openNic, NicLink } from '../../native-bindings/nic';
import { hugePageAllocator } from '../../native-bindings/afpacket';
import { snapshotCounters } from '../dataplane/counters';
import { formatCounters, formatRateLine } from '../obs/format';
import { createLogger, Logger } from '../obs/log';
import { createMetrics } from '../obs/metrics';
import { formatIpv4, parseIpv4 } from '../wire/addr';
import { VERSION } from './version';
import { HealthManager } from '../control/health/manager';
import { EventLog } from '../control/health/events';
import { tcpProbe, httpProbe, Probe } from '../control/health/probes';
import type { CheckType } from '../control/config/health';
import { checkTypesUsed } from '../control/controller';

import { SynHold } from '../dataplane/hold';
import { startLiveSynCheck, LIVE_HOLD_SLOTS, LiveSynCheck } from '../control/health/syn-check';
import { openProber } from '../control/health/syn-probe';

export interface RunArgs {
  config: string;
  iface?: string;
  kernelFilter: boolean;
  statsIntervalMs: number;
  /** Write the counters as JSON here every second and at exit (atomically: write, rename). */
  statusFile?: string;
  seed?: number;
  /** Where log lines go (one line per call, no newline). */
  log: (s: string) => void;
  /** HOST:PORT for the API (else the config's api.listen). */
  apiListen?: string;
  /** Else the config's state_file. */
  stateFile?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  logFormat?: 'json' | 'text';
}

export interface Running {
  built: Built;
  nic: NicLink;
  info: InterfaceInfo;
  controller: Controller;
  api: ApiServer;
  log: Logger;
  /** Stop everything, remove the kernel rule, and resolve `done` once the API is closed. Idempotent. */
  stop(): void;
  done: Promise<void>;
}

/** Start vipgate on a NIC. Throws VipgateError (clear message, exit 2) for anything the user must fix. */
export async function startLive(a: RunArgs): Promise<Running> {
  // The same validation as check-config; everything below is a fact of the live host.
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
  // One vipgate per NIC: taken before anything on the host is touched (the nftables table
  // above all), held until exit; the kernel drops it if this process dies.
  const lock = acquireInstanceLock(iface);
  try {
    return await startLocked(a, settings, log, iface, info, lock);
  } catch (e) {
    lock.release();
    throw e;
  }
}

async function startLocked(a: RunArgs, settings: RunSettings, log: Logger, iface: string, info: InterfaceInfo, lock: InstanceLock): Promise<Running> {
  const { config, apiListen, token, stateFile } = settings;
  if (stateFile) checkStateDir(stateFile);
  if (a.statusFile) checkStatusFile(a.statusFile);
  // One raw SYN prober (or its connect fallback) for `syn` health checks and the SYN-time check.
  const checkTypes = checkTypesUsed(config);
  const opened = checkTypes.includes('syn') || config.synCheck ? openProber() : null;
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
  const macText = config.macText ?? info.macText;
  // The flow table on huge pages where the addon is built: one TLB entry per 2 MiB, not per 4 KiB
  // (issue 10: ~1.3x established-flow frames per CPU-second at 1Mi flows in `npm run bench -- --huge`).
  const alloc = hugePageAllocator();
  const built = buildDataplane(config, { mac, ...(a.seed === undefined ? {} : { seed: a.seed }), ...(alloc ? { alloc } : {}) });
  const state = built.state;
  const dp = built.dataplane;
  const owned = (): number[] => dp.currentTables.spec.vips;
  const natBackends = (): number[] => config.mode === 'nat' ? dp.currentTables.spec.backends.map((b) => b.ip) : [];

  // The controller restores what the API changed before (the state file) and publishes the tables.
  const hooks: Array<(x: Applied) => void> = [];
  // Health checks and events: transitions republish the tables (never the state file) and are
  // logged, counted, listed (GET /v1/events) and sent to the configured hooks.
  const events = new EventLog({ config: config.events, log: (level, msg, fields) => log[level](msg, fields) });
  const health = new HealthManager({ probes: PROBES, events });
  const controller = new Controller({
    config, built, mac, stateFile, version: VERSION, iface, health, events,
    log: (level, msg, fields) => log[level](msg, fields),
    onApplied: (x) => { for (const h of hooks) h(x); },
  });
  for (const w of controller.restoreWarnings) log.warn(w, { event: 'state_restore' });
  if (stateFile) log.info(`state file ${stateFile}: generation ${controller.generation}, ${controller.registrations().length} registered backend(s) restored`, { event: 'state_restore' });

  // A start that fails from here on closes what it opened (the raw socket, hooks, check timers)
  // before the error goes up: an embedding caller (the tests) lives on after it.
  // The SYN-time check (started below, when the config asks for it) owns the prober once it runs.
  let syn: LiveSynCheck | null = null;
  const closeControl = () => {
    if (syn) syn.stop(); else opened?.prober.close();
    health.stop();
    events.close();
  };
  const filter = captureFilter(macText, info.ipv4.map(formatIpv4));
  let opening: ReturnType<typeof openNic>;
  try {
    opening = openNic(iface, { filter, io: config.io.backend, batch: config.io.batch, spinUs: config.io.spinUs });
  } catch (e) {
    closeControl();
    throw e;
  }
  const { nic, why: ioWhy } = opening;
  const kf = a.kernelFilter ? new KernelFilter({ iface, owned: owned(), backends: natBackends(), hostAddrs: info.ipv4 }, lock) : null;
  let api: ApiServer;
  try {
    kf?.install();
    const metrics = createMetrics({
      counters: state.counters, flowCapacity: state.flowCapacity, api: controller,
      health: { checkCounts: () => health.checkCounts(), typeCounts: () => events.typeCounts(), hookStats: () => events.hookStats() },
    });
    api = await startApiServer({
      listen: apiListen, token, api: controller, metrics: () => metrics.text(),
      log: (level, msg, fields) => log[level](msg, fields),
    });
  } catch (e) {
    nic.close();
    kf?.remove();
    closeControl();
    throw e;
  }

  log.info(describeRunSettings(settings).replace(/\n\s*/g, '; '));
  log.info(`attached to ${iface} (mac ${config.macText ?? info.macText + ' (the NIC\'s)'}, mtu ${info.mtu}), capture filter: ${filter}`, { event: 'attached', interface: iface });
  log.info(nic.io === 'native'
    ? `packet I/O: native (${ioWhy}): batches of up to ${config.io.batch} frames, polling ${config.io.spinUs} µs after the last frame`
    : `packet I/O: pcap (${ioWhy}): one frame per call`, { event: 'io', io: nic.io });
  log.info(`instance lock ${lock.file} (one vipgate per interface; held until exit)`, { event: 'locked', lock: lock.file });
  log.info(kf ? `kernel filter: ${kf.describe()}` : 'kernel filter: off (--no-kernel-filter): make sure this host\'s kernel drops VIP traffic itself');
  log.info(`API on http://${api.address}/v1 (${token ? 'bearer token required' : 'no token: loopback only'}), metrics on /metrics`, { event: 'api', address: api.address });

  // The SYN-time check (issue 8 item 5), when the config asks for it: a hold queue on the packet
  // path, probes from control, each result one more check for the health manager.
  if (opened && (opened.fallbackWhy || config.synCheck)) {
    log.info(opened.fallbackWhy ? `syn probes: TCP connects (raw SYN probes unavailable: ${opened.fallbackWhy})` : 'syn probes: raw SYNs from this host\'s route source address', { event: 'syn_probe' });
  }
  if (config.synCheck && opened) {
    syn = startLiveSynCheck({
      dp, hold: new SynHold(LIVE_HOLD_SLOTS), prober: opened.prober, timeoutMs: config.synCheck.timeoutMs,
      send: (b, n) => nic.send(b, n), observer: health, events,
    });
    log.info(`SYN-time check: max_age ${config.synCheck.maxAgeMs} ms, probe timeout ${config.synCheck.timeoutMs} ms, on_fail ${config.synCheck.onFail}, ` +
      (opened.fallbackWhy ? 'TCP connect probes' : 'raw SYN probes'), { event: 'syn_check' });
  }
  const live = attachLive(nic, dp, syn ? { onHold: syn.onHold } : {});
  const send = (f: Buffer) => nic.send(f, f.length);
  const announcer = new Announcer(send, state.counters, (ip) => dp.currentTables.vipIndex(ip) >= 0);
  announcer.announce(mac, owned(), config.announce.count, config.announce.intervalMs);
  // ARP requests for backends come from an address the backends can answer: the nat gateway
  // (on their subnet), else this host's own address on the NIC, else 0.0.0.0 (an RFC 5227 probe).
  const senderIp = () => config.natGateway ?? info.ipv4[0] ?? 0;
  const resolver = new BackendResolver(send, state, dp.neighbours, senderIp);
  resolver.tick(dp.currentTables, Date.now());

  // A change was applied (API, reload, lease expiry, a backend drained away): announce new VIPs,
  // keep the kernel out of new addresses, resolve new backends at once.
  hooks.push((x) => {
    if (x.vipsAdded.length) {
      announcer.announce(mac, x.vipsAdded, config.announce.count, config.announce.intervalMs);
      log.info(`announcing ${x.vipsAdded.map(formatIpv4).join(', ')}`, { event: 'vips_added', vips: x.vipsAdded.map(formatIpv4) });
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
    resolver.tick(dp.currentTables, now);
    controller.tick(now);
    const l = live.syncStats();
    if (l.newLinkErrors > 0) log.warn(`${iface}: the packet socket reported ${l.lastLinkError ?? 'an error'}; frames flow again once the interface is up`, { event: 'link_error' });
  }, 1000));
  // Checks start when due (spread over their interval); a hold-down ending re-steers new flows.
  // 10 ms: fine enough for 100 ms intervals and cheap (a loop over the backends).
  timers.push(setInterval(() => {
    const now = Date.now();
    health.tick(now);
    controller.healthTick(now);
  }, 10));
  // The flow sweep runs on the packet path's thread: small slices spread over the second, so it
  // never holds forwarding up for long whatever the table size (issue 10: 40 ms at 1Mi flows).
  const sweep = sweepPlan(state.flowSlots);
  timers.push(setInterval(() => { dp.sweep(Date.now(), sweep.slice); }, sweep.intervalMs));
  if (config.announce.refreshMs > 0) {
    timers.push(setInterval(() => announcer.announce(mac, owned(), 1, 0), config.announce.refreshMs));
  }
  if (a.statsIntervalMs > 0) {
    let prev = snapshotCounters(state.counters);
    timers.push(setInterval(() => {
      const cur = snapshotCounters(state.counters);
      log.info(formatRateLine(prev, cur, a.statsIntervalMs / 1000), { event: 'stats' });
      prev = cur;
    }, a.statsIntervalMs));
  }

  let statusFailing = false;
  const writeStatus = () => {
    if (!a.statusFile) return;
    const snap = snapshotCounters(state.counters);
    const tmp = `${a.statusFile}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, JSON.stringify({
        time: Date.now(), interface: iface, mode: config.mode, generation: controller.generation, ...snap,
        vips: controller.vips().map((v) => v.vip), backends: controller.backends(),
      }) + '\n');
      fs.renameSync(tmp, a.statusFile);
      if (statusFailing) log.info(`the status file ${a.statusFile} is written again`, { event: 'status_file' });
      statusFailing = false;
    } catch (e) {
      // Once when it starts failing (a full disk, say), not every second; again when it recovers.
      if (!statusFailing) log.warn(`cannot write the status file ${a.statusFile}: ${(e as Error).message}; retrying every second`, { event: 'status_file_failed' });
      statusFailing = true;
      try { fs.unlinkSync(tmp); } catch { /* not created */ }
    }
  };
  if (a.statusFile) { writeStatus(); timers.push(setInterval(writeStatus, 1000)); }

  let stopped = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const t of timers) clearInterval(t);
    closeControl();
    announcer.stop();
    live.syncStats();
    nic.close();
    kf?.remove();
    lock.release();
    writeStatus();
    log.info(`vipgate stopped; counters: ${formatCounters(snapshotCounters(state.counters)).replace(/\s*\n\s*/g, '; ')}`, { event: 'stopped' });
    void api.close().finally(resolveDone);
  };
  return { built, nic, info, controller, api, log, stop, done };
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

/** The CLI command: start, reload on SIGHUP, stop cleanly on SIGINT/SIGTERM, exit 0. */
export async function cmdRunLive(a: RunArgs): Promise<number> {
  const r = await startLive(a);
  const onSignal = (sig: string) => { r.log.info(`${sig}: stopping`); r.stop(); };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  // SIGHUP: read the config file again and apply it as a diff; a bad file changes nothing. The
  // controller logs the outcome (reload or reload_failed) once, as for `vipgate reload`.
  const onHup = () => {
    r.log.info('SIGHUP: reloading the config', { event: 'sighup' });
    try { r.controller.reload(); } catch { /* logged by the controller; nothing changed */ }
  };
  process.on('SIGHUP', onHup);
  // A bug must not leave the nftables rule behind.
  process.once('uncaughtException', (e) => { r.stop(); r.log.error(`internal error (a bug): ${e.stack}`); process.exit(1); });
  await r.done;
  process.removeListener('SIGHUP', onHup);
  return 0;
}

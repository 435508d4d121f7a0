// `vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval S] [--api ADDR] [--state-file F]`
// Attach to a live NIC and run the packet path until SIGINT/SIGTERM, with the controller and
// its runtime API beside it. SIGHUP reloads the config.

import * as fs from 'node:fs';
import { loadConfig, describeConfig, Config } from '../control/config';
import { VipgateError } from '../control/errors';
import { KernelFilter } from '../control/kernel-filter';
import { Announcer, BackendResolver } from '../control/arp-tasks';
import { Controller, Applied } from '../control/controller';
import { startApiServer, ApiServer } from '../control/api';
import { TOKEN_ENV } from '../control/api-types';
import { checkStateDir } from '../control/store';
import { buildDataplane, Built } from '../main';
import { interfaceInfo, missingCapabilities, InterfaceInfo } from '../link/host';
import { attachLive, captureFilter, sweepPlan } from '../link/live';
import { openNic, NicLink } from '../../native-bindings/nic';
import { hugePageAllocator } from '../../native-bindings/afpacket';
import { snapshotCounters } from '../dataplane/counters';
import { formatCounters, formatRateLine } from '../obs/format';
import { createLogger, Logger } from '../obs/log';
import { createMetrics } from '../obs/metrics';
import { formatIpv4 } from '../wire/addr';
import { VERSION } from './version';
import { HealthManager } from '../control/health/manager';
import { EventLog } from '../control/health/events';
import { tcpProbe, httpProbe, Probe } from '../control/health/probes';
import type { CheckType } from '../control/config/health';
import { checkTypesUsed } from '../control/controller';

/** The health probes this build has, by check type (the raw-SYN probe joins here when wired). */
const PROBES: Partial<Record<CheckType, Probe>> = { tcp: tcpProbe, http: httpProbe };

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
  const config: Config = loadConfig(a.config, { requireMac: false });
  const log = createLogger({
    level: a.logLevel ?? config.log.level, format: a.logFormat ?? config.log.format,
    stream: { write: (line: string) => a.log(line.replace(/\n$/, '')) },
  });
  const noProbe = checkTypesUsed(config).filter((ty) => !PROBES[ty]);
  if (noProbe.length) {
    throw new VipgateError('ECONFIG_INVALID', `${a.config}: health checks of type ${noProbe.join(', ')} are not available in this build of vipgate; use type: tcp or type: http`);
  }
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
  const apiListen = a.apiListen ?? config.api.listen;
  const envToken = process.env[TOKEN_ENV];
  if (envToken !== undefined && envToken !== '' && (envToken.length < 16 || /\s/.test(envToken))) {
    throw new VipgateError('ERUN_TOKEN', `${TOKEN_ENV} must be at least 16 characters without spaces; generate one with: openssl rand -hex 24`);
  }
  const token = envToken || config.api.token;
  const stateFile = a.stateFile ?? config.stateFile;
  if (stateFile) checkStateDir(stateFile);
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

  const filter = captureFilter(macText, info.ipv4.map(formatIpv4));
  const { nic, why: ioWhy } = openNic(iface, { filter, io: config.io.backend, batch: config.io.batch, spinUs: config.io.spinUs });
  const kf = a.kernelFilter ? new KernelFilter({ iface, owned: owned(), backends: natBackends(), hostAddrs: info.ipv4 }) : null;
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
    throw e;
  }

  log.info(describeConfig(config).replace(/\n/g, '; '));
  log.info(`attached to ${iface} (mac ${config.macText ?? info.macText + ' (the NIC\'s)'}, mtu ${info.mtu}), capture filter: ${filter}`, { event: 'attached', interface: iface });
  log.info(nic.io === 'native'
    ? `packet I/O: native (${ioWhy}): batches of up to ${config.io.batch} frames, polling ${config.io.spinUs} µs after the last frame`
    : `packet I/O: pcap (${ioWhy}): one frame per call`, { event: 'io', io: nic.io });
  log.info(kf ? `kernel filter: ${kf.describe()}` : 'kernel filter: off (--no-kernel-filter): make sure this host\'s kernel drops VIP traffic itself');
  log.info(`API on http://${api.address}/v1 (${token ? 'bearer token required' : 'no token: loopback only'}), metrics on /metrics`, { event: 'api', address: api.address });

  const live = attachLive(nic, dp, { budget: config.io.batch });
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
    } catch (e) {
      log.warn(`cannot write the status file ${a.statusFile}: ${(e as Error).message}`);
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
    health.stop();
    events.close();
    announcer.stop();
    live.syncStats();
    nic.close();
    kf?.remove();
    writeStatus();
    log.info(`vipgate stopped; counters: ${formatCounters(snapshotCounters(state.counters)).replace(/\s*\n\s*/g, '; ')}`, { event: 'stopped' });
    void api.close().finally(resolveDone);
  };
  return { built, nic, info, controller, api, log, stop, done };
}

/** The CLI command: start, reload on SIGHUP, stop cleanly on SIGINT/SIGTERM, exit 0. */
export async function cmdRunLive(a: RunArgs): Promise<number> {
  const r = await startLive(a);
  const onSignal = (sig: string) => { r.log.info(`${sig}: stopping`); r.stop(); };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  // SIGHUP: read the config file again and apply it as a diff; a bad file changes nothing.
  const onHup = () => {
    try {
      const res = r.controller.reload();
      r.log.info(`SIGHUP: reloaded (generation ${res.generation}): ${res.changes.length ? res.changes.join('; ') : 'no changes'}`, { event: 'reload' });
    } catch (e) {
      r.log.error(`SIGHUP: reload refused, nothing changed: ${(e as Error).message}`, { event: 'reload_failed' });
    }
  };
  process.on('SIGHUP', onHup);
  // A bug must not leave the nftables rule behind.
  process.once('uncaughtException', (e) => { r.stop(); r.log.error(`internal error (a bug): ${e.stack}`); process.exit(1); });
  await r.done;
  process.removeListener('SIGHUP', onHup);
  return 0;
}

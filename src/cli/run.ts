// `vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval S]`
// Attach to a live NIC and run the packet path until SIGINT/SIGTERM.

import * as fs from 'node:fs';
import { loadConfig, describeConfig, Config } from '../control/config';
import { VipgateError } from '../control/errors';
import { KernelFilter } from '../control/kernel-filter';
import { Announcer, BackendResolver } from '../control/arp-tasks';
import { buildDataplane, Built } from '../main';
import { interfaceInfo, missingCapabilities, InterfaceInfo } from '../link/host';
import { attachLive, captureFilter } from '../link/live';
import { openNic, NicLink } from '../../native-bindings/nic';
import { snapshotCounters } from '../dataplane/counters';
import { formatCounters, formatRateLine } from '../obs/format';
import { formatIpv4, formatMac } from '../wire/addr';
import { BackendState } from '../tables/services';

export interface RunArgs {
  config: string;
  iface?: string;
  kernelFilter: boolean;
  statsIntervalMs: number;
  /** Write the counters as JSON here every second and at exit (atomically: write, rename). */
  statusFile?: string;
  seed?: number;
  log: (s: string) => void;
}

export interface Running {
  built: Built;
  nic: NicLink;
  info: InterfaceInfo;
  /** Stop everything, remove the kernel rule, and resolve once done. Idempotent. */
  stop(): void;
  /** Resolves when stopped (by stop() or a signal). */
  done: Promise<void>;
}

/** Start vipgate on a NIC. Throws VipgateError (clear message, exit 2) for anything the user must fix. */
export function startLive(a: RunArgs): Running {
  const config: Config = loadConfig(a.config, { requireMac: false });
  const iface = a.iface ?? config.interface;
  if (!iface) throw new VipgateError('ERUN_NO_INTERFACE', `${a.config}: no interface to attach to: add interface: eth0 (the NIC facing the clients) to the config, or pass --interface`);
  const info = interfaceInfo(iface);
  const missing = missingCapabilities(a.kernelFilter);
  if (missing.length) {
    throw new VipgateError('ERUN_PERMISSION',
      `vipgate run needs ${missing.join(' and ')}; run it as root, or give node the capabilities ` +
      `(setcap cap_net_raw,cap_net_admin+ep "$(readlink -f "$(command -v node)")"), or in docker use --cap-add NET_RAW --cap-add NET_ADMIN`);
  }
  if (!info.up) a.log(`warning: ${iface} is down; vipgate will see nothing until it is up (ip link set ${iface} up)`);
  const mac = config.mac ?? info.mac;
  const built = buildDataplane(config, { mac, ...(a.seed === undefined ? {} : { seed: a.seed }) });
  const owned = built.tables.spec.vips;
  const natBackends = config.mode === 'nat' ? config.backends.map((b) => b.ip) : [];
  const filter = captureFilter(config.macText ?? info.macText, owned.map(formatIpv4), natBackends.map(formatIpv4));
  const nic = openNic(iface, { filter });

  const kf = a.kernelFilter ? new KernelFilter({ iface, owned, backends: natBackends, hostAddrs: info.ipv4 }) : null;
  try {
    kf?.install();
  } catch (e) {
    nic.close();
    throw e;
  }

  a.log(describeConfig(config));
  a.log(`attached to ${iface} (mac ${config.macText ?? info.macText + ' (the NIC\'s)'}, mtu ${info.mtu}), capture filter: ${filter}`);
  a.log(kf ? `kernel filter: ${kf.describe()}` : 'kernel filter: off (--no-kernel-filter): make sure this host\'s kernel drops VIP traffic itself');

  const dp = built.dataplane;
  attachLive(nic, dp);
  const send = (f: Buffer) => nic.send(f, f.length);
  const state = built.state;
  const announcer = new Announcer(send, state.counters, (ip) => dp.currentTables.vipIndex(ip) >= 0);
  announcer.announce(mac, owned, config.announce.count, config.announce.intervalMs);
  // ARP requests for backends come from an address the backends can answer: the nat gateway
  // (on their subnet), else this host's own address on the NIC, else 0.0.0.0 (an RFC 5227 probe).
  const senderIp = () => config.natGateway ?? info.ipv4[0] ?? 0;
  const resolver = new BackendResolver(send, state, dp.neighbours, senderIp);
  resolver.tick(dp.currentTables, Date.now());

  const timers: NodeJS.Timeout[] = [];
  timers.push(setInterval(() => {
    const now = Date.now();
    resolver.tick(dp.currentTables, now);
    // Visit every slot once per half-open timeout at most, in slices.
    dp.sweep(now, Math.max(4096, Math.ceil(state.flowSlots / 10)));
  }, 1000));
  if (config.announce.refreshMs > 0) {
    timers.push(setInterval(() => announcer.announce(mac, owned, 1, 0), config.announce.refreshMs));
  }
  if (a.statsIntervalMs > 0) {
    let prev = snapshotCounters(state.counters);
    timers.push(setInterval(() => {
      const cur = snapshotCounters(state.counters);
      a.log(formatRateLine(prev, cur, a.statsIntervalMs / 1000));
      prev = cur;
    }, a.statsIntervalMs));
  }

  const writeStatus = () => {
    if (!a.statusFile) return;
    const snap = snapshotCounters(state.counters);
    const tmp = `${a.statusFile}.tmp-${process.pid}`;
    try {
      fs.writeFileSync(tmp, JSON.stringify({ time: Date.now(), interface: iface, mode: config.mode, ...snap, ...liveTables(built, Date.now()) }) + '\n');
      fs.renameSync(tmp, a.statusFile);
    } catch (e) {
      a.log(`warning: cannot write the status file ${a.statusFile}: ${(e as Error).message}`);
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
    announcer.stop();
    nic.close();
    kf?.remove();
    writeStatus();
    a.log(`vipgate stopped; counters:\n${formatCounters(snapshotCounters(state.counters))}`);
    resolveDone();
  };
  return { built, nic, info, stop, done };
}

export interface BackendStatus { name: string; ip: string; state: string; mac: string | null; macSource: 'config' | 'arp' | null; flows: number }

/** What the tables hold now, for the status file and live views (control side: scans the flow table). */
export function liveTables(b: Built, now: number): { vips: string[]; backends: BackendStatus[] } {
  const t = b.dataplane.currentTables, st = b.state, fl = b.dataplane.flows;
  const perSlot = new Array<number>(t.backendSlots).fill(0);
  if (st.flowSlots <= 1 << 22) for (let s = 0; s < st.flowSlots; s++) if (fl.live(s)) perSlot[fl.backend(s)]!++;
  b.dataplane.setClock(now);
  const states = Object.keys(BackendState) as Array<keyof typeof BackendState>;
  const backends = t.backendNames.map((name, slot): BackendStatus | null => {
    if (!name) return null;
    let mac: string | null = null, src: BackendStatus['macSource'] = null;
    if (t.bHasMac[slot]) { mac = formatMac(t.bMac, slot * 8); src = 'config'; } else {
      const n = b.dataplane.neighbours.lookup(t.bIp[slot]!);
      if (n >= 0) { mac = formatMac(st.nMac, n * 8); src = 'arp'; }
    }
    return { name, ip: formatIpv4(t.bIp[slot]!), state: String(states[t.bState[slot]!] ?? '?'), mac, macSource: src, flows: perSlot[slot]! };
  }).filter((x): x is BackendStatus => x !== null);
  return { vips: t.spec.vips.map(formatIpv4), backends };
}

/** The CLI command: start, stop cleanly on SIGINT/SIGTERM, exit 0. */
export async function cmdRunLive(a: RunArgs): Promise<number> {
  const r = startLive(a);
  const onSignal = (sig: string) => { a.log(`${sig}: stopping`); r.stop(); };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  // A bug must not leave the nftables rule behind.
  process.once('uncaughtException', (e) => { r.stop(); a.log(`internal error: ${e.stack}`); process.exit(1); });
  await r.done;
  return 0;
}

// The network-namespace lab: one Linux machine, a "switch" namespace holding a bridge, and one
// namespace per host (the vipgate host, clients, backends running a real HTTP server), each
// joined to the bridge by a veth pair. Two topologies, `dsr` and `nat`; addresses and diagrams
// are in scenarios/lab/README.md.
//
// Safety rules this file keeps (the lab runs as root on a shared machine):
// - Nothing is created in the caller's own network namespace: every veth is created inside the
//   lab's switch namespace with its peer placed straight into the host namespace, so no lab
//   interface ever exists on the host, and no host interface, route or address is touched.
// - Every name carries a per-run prefix `vg<creator pid, hex>x<4 random hex>`; the stale-lab
//   sweep deletes only namespaces matching exactly that pattern whose creator PID is gone.
// - Every process the lab starts is tracked and ended by its own PID at teardown; the lab's own
//   servers and load generators also exit when their stdin closes (the lab process died).
// - Teardown runs on teardown(), on a failed createLab, on process exit and on
//   SIGINT/SIGTERM/SIGHUP; it is synchronous so it works inside an 'exit' handler.

import { spawn as cpSpawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type LabMode = 'dsr' | 'nat';

export interface LabOptions {
  mode: LabMode;
  /** Number of client namespaces, 1..9 (default 2). */
  clients?: number;
  /** Number of backend namespaces, 1..9 (default 3). */
  backends?: number;
  /** VIPs, each in 10.77.0.0/24 and not a host address (default 10.77.0.100 and .101). */
  vips?: string[];
  /**
   * Cluster labs (issue 11): this many vipgate hosts `<prefix>-lb1..lbN` (2..8) on the one bridge,
   * at 10.77.0.2..(1+N), instead of the one `<prefix>-vg`. Node 1 is also `ns.vipgate` (and `vg`
   * names it in exec/spawn), so single-node helpers drive it unchanged. Default: no nodes.
   */
  nodes?: number;
  /** Name prefix (default `vg<pid hex>x<4 random hex>`, which the stale sweep recognises). */
  prefix?: string;
  log?: (s: string) => void;
}

export interface ExecResult { code: number; stdout: string; stderr: string }

import type { LoadResult } from './load';
import type { ArpProbeResult } from './arp-probe';
export type { LoadResult };

export interface Lab {
  prefix: string;
  mode: LabMode;
  ns: { switch: string; vipgate: string; clients: string[]; backends: string[]; nodes: string[] };
  addr: {
    vipgate: string;
    /** nat: 10.77.1.1, the backends' default gateway, owned by vipgate alone (no kernel has it). */
    gateway: string | null;
    clients: string[];
    backends: string[];
    vips: string[];
    /** An address of backend b1 a client reaches without vipgate (dsr: 10.77.0.21, nat: 10.77.0.31). */
    direct: string;
    /** Cluster labs: each node's host address (its heartbeats' source), 10.77.0.2.. ; else []. */
    nodes: string[];
  };
  /** MACs the lab sets on each host's eth0 (02:77:<subnet>:00:00:<host byte>), so configs and captures are stable. */
  mac: { vipgate: string; clients: string[]; backends: string[]; nodes: string[] };
  backendNames: string[];
  vipgateIf: 'eth0';
  /** TCP port of every backend's HTTP server. */
  httpPort: number;
  /** http://<direct>/ — backend b1 reached by the kernel alone, the benchmark baseline. */
  directUrl: string;
  /** http://<vip>/ for each VIP. */
  vipUrls: string[];
  /** `ip netns exec ns argv...`, synchronous. ns is a full lab namespace name or its suffix ("c1", "b2", "vg", "sw"). */
  exec(ns: string, argv: string[], opts?: { timeoutMs?: number; input?: string }): ExecResult;
  /** `ip netns exec ns argv...` as a tracked child (killed by PID at teardown); stdio defaults to pipes, drained. */
  spawn(ns: string, argv: string[], opts?: SpawnOptions): ChildProcess;
  /** Idempotent: ends tracked processes by PID, deletes the namespaces (which removes veths and bridge). */
  teardown(): void;
  /**
   * Add a host namespace `<prefix>-<role>` (role r1..r9 for a router, f1..f9 for a host beyond
   * one) to this lab, deleted with it: IPv6 off, rp_filter 0, lo up, no interface yet. Returns its name.
   */
  addHost(role: string): string;
  /**
   * A veth from lab host `a` (interface `aIf`) to lab host `b` (`bIf`), or to the bridge when `b`
   * is 'sw' (then `bIf` names the bridge port): created inside `a`'s namespace with the peer
   * placed straight into the other, never in the caller's. Offloads off, both ends up; `mac`
   * sets `aIf`'s MAC.
   */
  link(a: string, aIf: string, b: string, bIf: string, mac?: string): void;
}

// ---- addresses --------------------------------------------------------------------------------

export const LAB_HTTP_PORT = 80;
const NET_FRONT = '10.77.0';
const NET_BACK = '10.77.1';
const VIPGATE_HOST = 2;
const GATEWAY_HOST = 1;
const CLIENT_BASE = 11;
const BACKEND_BASE = 21;
const NAT_DIRECT_HOST = 31;
const MAX_HOSTS = 9;
/** Cluster nodes take 10.77.0.2 .. 10.77.0.9, below the clients. */
const MAX_NODES = 8;
const DEFAULT_VIPS = ['10.77.0.100', '10.77.0.101'];
/** Policy-routing table on nat backend b1 (see README: "why b1 has a rule"). */
const NAT_B1_TABLE = 77;
const OFFLOADS_OFF = ['tx', 'off', 'rx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off'];

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const macOf = (subnet: number, host: number): string => `02:77:${hex2(subnet)}:00:00:${hex2(host)}`;

// ---- names ------------------------------------------------------------------------------------

/** `vg<pid hex>x<4 hex>-<role>`; role is sw, vg, probe, c<n>, b<n>, lb<n> or an added host. Only these are swept. */
const STALE_NS_RE = /^vg([0-9a-f]{1,8})x[0-9a-f]{4}-(sw|vg|probe|c[0-9]{1,2}|b[0-9]{1,2}|lb[0-9]|[rf][0-9])$/;
/** Roles of the namespaces a test adds to a lab (addHost): r1..r9 routers, f1..f9 hosts beyond them. */
const EXTRA_ROLE_RE = /^[rf][0-9]$/;

function newPrefix(): string {
  return `vg${process.pid.toString(16)}x${crypto.randomBytes(2).toString('hex')}`;
}

// ---- small process helpers --------------------------------------------------------------------

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): ExecResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input,
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let code = r.status ?? -1;
  if (r.status === null && r.signal) code = 128 + (signalNumber(r.signal) ?? 0);
  const stderr = (r.stderr ?? '') + (r.error ? `${r.stderr ? '\n' : ''}${r.error.message}` : '');
  return { code, stdout: r.stdout ?? '', stderr };
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  const n = os.constants.signals[sig];
  return typeof n === 'number' ? n : undefined;
}

function mustRun(what: string, cmd: string, args: string[], input?: string): ExecResult {
  const r = input === undefined ? run(cmd, args) : run(cmd, args, { input });
  if (r.code !== 0) {
    throw new Error(`lab: ${what} failed (exit ${r.code}): ${cmd} ${args.join(' ')}\n${r.stderr.trim()}`);
  }
  return r;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True when pid no longer runs: gone, or a zombie (it has left its namespaces already). */
function processGone(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNetns(): string[] {
  const r = run('ip', ['netns', 'list']);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((s) => s.length > 0);
}

function deleteNetns(names: string[]): void {
  if (names.length === 0) return;
  // -force: keep going past a name that is already gone.
  run('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns delete ${n}\n`).join('') });
}

// ---- exit hooks -------------------------------------------------------------------------------

const liveLabs = new Set<LabImpl>();
const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const signalHandlers = new Map<NodeJS.Signals, () => void>();
/** How long other listeners of a stop signal get before the lab re-raises it (see hookExit). */
const SIGNAL_GRACE_MS = 2000;

/**
 * Remove the shared-state regions vipgate left for these namespaces (/dev/shm/vipgate-<iface>.netns<inode>.state
 * and the files beside it: src/shm/region.ts). The kernel reuses a deleted namespace's inode for a
 * new one, so a region left behind would be attached by a later lab's vipgate: its flows and
 * counters, or refused for another capacity. Run before the namespaces go (their inode is read
 * from the /run/netns bind mount).
 */
function removeSharedState(names: string[]): void {
  const inodes = new Set<number>();
  for (const n of names) { try { inodes.add(fs.statSync(path.join('/run/netns', n)).ino); } catch { /* not mounted */ } }
  if (inodes.size === 0) return;
  let files: string[];
  try { files = fs.readdirSync('/dev/shm'); } catch { return; }
  for (const f of files) {
    const m = /^vipgate-.*\.netns(\d+)\.state/.exec(f);
    if (m && inodes.has(Number(m[1]))) fs.rmSync(path.join('/dev/shm', f), { force: true });
  }
}

/** Inodes of every network namespace that still exists: bind-mounted under /run/netns, or some process's. */
function liveNetnsInodes(): Set<number> {
  const live = new Set<number>();
  const add = (p: string) => { try { live.add(fs.statSync(p).ino); } catch { /* gone meanwhile */ } };
  try { for (const n of fs.readdirSync('/run/netns')) add(path.join('/run/netns', n)); } catch { /* none */ }
  try { for (const pid of fs.readdirSync('/proc')) if (/^\d+$/.test(pid)) add(`/proc/${pid}/ns/net`); } catch { /* no /proc */ }
  return live;
}

/**
 * Remove regions whose namespace is gone (a lab that crashed before its teardown, or from before
 * teardown removed them), made more than a minute ago (a namespace exists before its region, so
 * a region that new may belong to a lab being built right now). Returns the files removed.
 */
export function sweepOrphanRegions(): string[] {
  let files: string[];
  try { files = fs.readdirSync('/dev/shm'); } catch { return []; }
  const live = liveNetnsInodes();
  const removed: string[] = [];
  for (const f of files) {
    const m = /^vipgate-.*\.netns(\d+)\.state/.exec(f);
    if (!m || live.has(Number(m[1]))) continue;
    const file = path.join('/dev/shm', f);
    try { if (Date.now() - fs.statSync(file).ctimeMs < 60_000) continue; } catch { continue; }
    fs.rmSync(file, { force: true });
    removed.push(file);
  }
  return removed;
}

function teardownAll(): void {
  for (const lab of [...liveLabs]) lab.teardown();
}

function hookExit(): void {
  if (signalHandlers.size > 0) return;
  process.on('exit', teardownAll);
  for (const sig of HOOK_SIGNALS) {
    const h = (): void => {
      teardownAll();
      unhookExit();
      // The signal meant "stop": re-raise it so its default action ends the process, as it would
      // have without us. If someone else listens too, give them SIGNAL_GRACE_MS to finish (an
      // unref'd timer never keeps the process alive) and re-raise then. Waiting for them alone
      // is not enough: signal-exit (loaded into tap's test processes) only re-raises when it is
      // the sole listener, and so does this handler — each would wait for the other forever.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      else setTimeout(() => process.kill(process.pid, sig), SIGNAL_GRACE_MS).unref();
    };
    signalHandlers.set(sig, h);
    process.on(sig, h);
  }
}

function unhookExit(): void {
  process.removeListener('exit', teardownAll);
  for (const [sig, h] of signalHandlers) process.removeListener(sig, h);
  signalHandlers.clear();
}

// ---- the lab ----------------------------------------------------------------------------------

interface Tracked { child: ChildProcess; tail: string }

class LabImpl implements Lab {
  readonly prefix: string;
  readonly mode: LabMode;
  readonly ns: Lab['ns'];
  readonly addr: Lab['addr'];
  readonly mac: Lab['mac'];
  readonly backendNames: string[];
  readonly vipgateIf = 'eth0' as const;
  readonly httpPort = LAB_HTTP_PORT;
  readonly directUrl: string;
  readonly vipUrls: string[];
  private readonly tracked = new Set<Tracked>();
  /** Output tails outlive tracking, so a child that died can still explain itself. */
  private readonly tails = new WeakMap<ChildProcess, Tracked>();
  private torndown = false;
  /** Namespaces this lab created, in order; the only ones teardown deletes. */
  readonly created: string[] = [];
  private readonly log: (s: string) => void;

  constructor(o: Required<Omit<LabOptions, 'log'>> & { log: (s: string) => void }) {
    this.prefix = o.prefix;
    this.mode = o.mode;
    this.log = o.log;
    const p = o.prefix;
    const nat = o.mode === 'nat';
    const idx = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
    const nodes = idx(o.nodes).map((i) => `${p}-lb${i + 1}`);
    this.ns = {
      switch: `${p}-sw`,
      vipgate: nodes[0] ?? `${p}-vg`,
      clients: idx(o.clients).map((i) => `${p}-c${i + 1}`),
      backends: idx(o.backends).map((i) => `${p}-b${i + 1}`),
      nodes,
    };
    this.addr = {
      vipgate: `${NET_FRONT}.${VIPGATE_HOST}`,
      gateway: nat ? `${NET_BACK}.${GATEWAY_HOST}` : null,
      clients: idx(o.clients).map((i) => `${NET_FRONT}.${CLIENT_BASE + i}`),
      backends: idx(o.backends).map((i) => `${nat ? NET_BACK : NET_FRONT}.${BACKEND_BASE + i}`),
      vips: [...o.vips],
      direct: nat ? `${NET_FRONT}.${NAT_DIRECT_HOST}` : `${NET_FRONT}.${BACKEND_BASE}`,
      nodes: idx(o.nodes).map((i) => `${NET_FRONT}.${VIPGATE_HOST + i}`),
    };
    this.mac = {
      vipgate: macOf(0, VIPGATE_HOST),
      clients: idx(o.clients).map((i) => macOf(0, CLIENT_BASE + i)),
      backends: idx(o.backends).map((i) => macOf(nat ? 1 : 0, BACKEND_BASE + i)),
      nodes: idx(o.nodes).map((i) => macOf(0, VIPGATE_HOST + i)),
    };
    this.backendNames = idx(o.backends).map((i) => `web${i + 1}`);
    this.directUrl = `http://${this.addr.direct}/`;
    this.vipUrls = this.addr.vips.map((v) => `http://${v}/`);
  }

  /** Hosts added by addHost, in order. */
  private readonly extra: string[] = [];

  allNs(): string[] {
    const hosts = this.ns.nodes.length > 0 ? this.ns.nodes : [this.ns.vipgate];
    return [this.ns.switch, ...hosts, ...this.ns.clients, ...this.ns.backends, ...this.extra];
  }

  addHost(role: string): string {
    if (this.torndown) throw new Error(`lab ${this.prefix}: addHost after teardown`);
    if (!EXTRA_ROLE_RE.test(role)) throw new Error(`lab ${this.prefix}: addHost role must be r1..r9 or f1..f9, got ${JSON.stringify(role)}`);
    const n = `${this.prefix}-${role}`;
    if (this.extra.includes(n) || listNetns().includes(n)) throw new Error(`lab ${this.prefix}: namespace ${n} already exists`);
    mustRun('creating a namespace', 'ip', ['netns', 'add', n]);
    this.created.push(n);
    this.extra.push(n);
    this.sh(n, 'sysctls', [
      sysctlIfPresent('net.ipv6.conf.all.disable_ipv6', 1),
      sysctlIfPresent('net.ipv6.conf.default.disable_ipv6', 1),
      sysctl('net.ipv4.conf.all.rp_filter', 0),
      sysctl('net.ipv4.conf.default.rp_filter', 0),
      'ip link set dev lo up',
    ].join('\n'));
    return n;
  }

  link(a: string, aIf: string, b: string, bIf: string, mac?: string): void {
    const an = this.resolveNs(a), bn = this.resolveNs(b);
    const off = OFFLOADS_OFF.join(' ');
    const toBridge = bn === this.ns.switch;
    this.sh(an, `linking ${aIf} to ${bn}`, [
      `ip link add name ${aIf} type veth peer name ${bIf} netns ${bn}`,
      sysctlIfPresent(`net.ipv6.conf.${aIf}.disable_ipv6`, 1),
      sysctl(`net.ipv4.conf.${aIf}.rp_filter`, 0),
      mac ? `ip link set dev ${aIf} address ${mac}` : '',
      `ethtool -K ${aIf} ${off} >/dev/null`,
      `ip link set dev ${aIf} up`,
    ].filter((l) => l !== '').join('\n'));
    this.sh(bn, `bringing up ${bIf}`, [
      sysctlIfPresent(`net.ipv6.conf.${bIf}.disable_ipv6`, 1),
      toBridge ? `ip link set dev ${bIf} master br0` : sysctl(`net.ipv4.conf.${bIf}.rp_filter`, 0),
      `ethtool -K ${bIf} ${off} >/dev/null`,
      `ip link set dev ${bIf} up`,
    ].join('\n'));
  }

  resolveNs(ns: string): string {
    const all = this.allNs();
    if (all.includes(ns)) return ns;
    // `vg` is "the vipgate host" to every single-node helper: node 1 in a cluster lab.
    if (ns === 'vg') return this.ns.vipgate;
    const full = `${this.prefix}-${ns}`;
    if (all.includes(full)) return full;
    throw new Error(`lab ${this.prefix}: ${JSON.stringify(ns)} is not one of this lab's namespaces (${all.join(', ')})`);
  }

  exec(ns: string, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): ExecResult {
    if (this.torndown) throw new Error(`lab ${this.prefix}: exec after teardown`);
    return run('ip', ['netns', 'exec', this.resolveNs(ns), ...argv], opts);
  }

  spawn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.torndown) throw new Error(`lab ${this.prefix}: spawn after teardown`);
    // `ip netns exec` execs the command in place (no fork), so child.pid is the command's PID.
    const child = cpSpawn('ip', ['netns', 'exec', this.resolveNs(ns), ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    const t: Tracked = { child, tail: '' };
    const keep = (d: Buffer | string): void => {
      t.tail = (t.tail + d.toString()).slice(-8192);
    };
    // Drain pipes so a chatty child never blocks on a full pipe; keep a tail for error messages.
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.stdin?.on('error', () => {});
    this.tracked.add(t);
    this.tails.set(child, t);
    child.on('exit', () => this.tracked.delete(t));
    child.on('error', () => this.tracked.delete(t));
    return child;
  }

  tailOf(child: ChildProcess): string {
    return this.tails.get(child)?.tail ?? '';
  }

  teardown(): void {
    if (this.torndown) return;
    this.torndown = true;
    liveLabs.delete(this);
    if (liveLabs.size === 0) unhookExit();
    this.killTracked();
    const mine = [...this.created];
    removeSharedState(mine);
    deleteNetns(mine);
    const left = listNetns().filter((n) => mine.includes(n));
    if (left.length > 0) {
      sleepSync(200);
      deleteNetns(left);
      const still = listNetns().filter((n) => mine.includes(n));
      if (still.length > 0) this.log(`lab ${this.prefix}: could not delete ${still.join(', ')}`);
    }
    this.log(`lab ${this.prefix}: torn down`);
  }

  private killTracked(): void {
    const pids = [...this.tracked]
      .map((t) => t.child)
      .filter((c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null)
      .map((c) => c.pid!);
    for (const pid of pids) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    const waitGone = (ms: number): number[] => {
      const until = Date.now() + ms;
      let alive = pids.filter((p) => !processGone(p));
      while (alive.length > 0 && Date.now() < until) {
        sleepSync(20);
        alive = alive.filter((p) => !processGone(p));
      }
      return alive;
    };
    const stubborn = waitGone(2000);
    for (const pid of stubborn) {
      this.log(`lab ${this.prefix}: pid ${pid} ignored SIGTERM, sending SIGKILL`);
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (stubborn.length > 0) waitGone(1000);
    for (const t of this.tracked) {
      t.child.stdin?.destroy();
      t.child.stdout?.destroy();
      t.child.stderr?.destroy();
    }
  }

  /** Runs `sh -ec script` inside ns, failing with the script's stderr. */
  sh(ns: string, what: string, script: string): void {
    mustRun(`${what} in ${ns}`, 'ip', ['netns', 'exec', ns, 'sh', '-ec', script]);
  }
}

// ---- building ---------------------------------------------------------------------------------

function sysctl(key: string, value: string | number): string {
  return `echo ${value} > /proc/sys/${key.replace(/\./g, '/')}`;
}
/** The IPv6 knobs do not exist when the kernel runs with ipv6.disable=1; nothing to silence then. */
function sysctlIfPresent(key: string, value: string | number): string {
  const f = `/proc/sys/${key.replace(/\./g, '/')}`;
  return `if [ -e ${f} ]; then echo ${value} > ${f}; fi`;
}

function validateOptions(o: LabOptions): Required<Omit<LabOptions, 'log'>> {
  const nodes = o.nodes ?? 0;
  if (o.nodes !== undefined && (!Number.isInteger(nodes) || nodes < 2 || nodes > MAX_NODES)) {
    throw new Error(`lab: nodes must be an integer 2..${MAX_NODES} (a cluster lab), got ${o.nodes}; leave it out for the one vipgate host`);
  }
  if (o.mode !== 'dsr' && o.mode !== 'nat') throw new Error(`lab: mode must be 'dsr' or 'nat', got ${JSON.stringify(o.mode)}`);
  const clients = o.clients ?? 2;
  const backends = o.backends ?? 3;
  for (const [k, v] of [['clients', clients], ['backends', backends]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_HOSTS) throw new Error(`lab: ${k} must be an integer 1..${MAX_HOSTS}, got ${v}`);
  }
  const vips = o.vips ?? DEFAULT_VIPS;
  if (vips.length === 0) throw new Error('lab: at least one VIP is needed');
  const reserved = new Set<number>([0, GATEWAY_HOST, VIPGATE_HOST, NAT_DIRECT_HOST, 255]);
  for (let i = 0; i < MAX_HOSTS; i++) { reserved.add(CLIENT_BASE + i); reserved.add(BACKEND_BASE + i); }
  for (let i = 0; i < nodes; i++) reserved.add(VIPGATE_HOST + i);
  for (const v of vips) {
    const m = /^10\.77\.0\.(\d{1,3})$/.exec(v);
    const host = m ? Number(m[1]) : -1;
    if (!m || host > 255 || reserved.has(host)) {
      throw new Error(`lab: VIP ${JSON.stringify(v)} must be in 10.77.0.0/24 (the clients' subnet) and not a host address (.0 .1 .2${nodes > 1 ? `-.${VIPGATE_HOST + nodes - 1}` : ''} .11-.19 .21-.29 .31 .255)`);
    }
  }
  if (new Set(vips).size !== vips.length) throw new Error(`lab: duplicate VIPs in ${vips.join(', ')}`);
  const prefix = o.prefix ?? newPrefix();
  if (!/^[a-z][a-z0-9]{1,20}$/.test(prefix)) throw new Error(`lab: prefix must be lowercase letters and digits, 2..21 chars, got ${JSON.stringify(prefix)}`);
  return { mode: o.mode, clients, backends, vips, prefix, nodes };
}

function build(lab: LabImpl, vips: string[]): void {
  const nat = lab.mode === 'nat';
  const all = lab.allNs();
  const existing = new Set(listNetns());
  const clash = all.filter((n) => existing.has(n));
  if (clash.length > 0) throw new Error(`lab: namespaces already exist: ${clash.join(', ')} (pick another prefix)`);

  // One by one, recording each, so teardown deletes only what this lab created — never a
  // namespace of the same name that belonged to someone else.
  for (const n of all) {
    mustRun('creating a namespace', 'ip', ['netns', 'add', n]);
    lab.created.push(n);
  }

  // Phase 1, every namespace: knobs that new interfaces inherit (conf.default) and global ones,
  // before any veth exists, so no interface ever comes up with IPv6 (no ND/MLD noise).
  const vipgateHosts = lab.ns.nodes.length > 0 ? lab.ns.nodes : [lab.ns.vipgate];
  const hosts: { role: 'vg' | 'c' | 'b'; ns: string }[] = [
    ...vipgateHosts.map((ns) => ({ role: 'vg' as const, ns })),
    ...lab.ns.clients.map((ns) => ({ role: 'c' as const, ns })),
    ...lab.ns.backends.map((ns) => ({ role: 'b' as const, ns })),
  ];
  for (const n of all) {
    const lines = [
      sysctlIfPresent('net.ipv6.conf.all.disable_ipv6', 1),
      sysctlIfPresent('net.ipv6.conf.default.disable_ipv6', 1),
      sysctl('net.ipv4.conf.all.rp_filter', 0),
      sysctl('net.ipv4.conf.default.rp_filter', 0),
      // vipgate forwards in userspace; the vipgate host's kernel must not forward a second copy.
      sysctl('net.ipv4.ip_forward', 0),
    ];
    if (n === lab.ns.switch) {
      // If br_netfilter is loaded, bridged frames would traverse this namespace's (empty)
      // iptables; switch it off so the bridge is a plain switch. Absent module: nothing to do.
      for (const k of ['bridge-nf-call-iptables', 'bridge-nf-call-arptables', 'bridge-nf-call-ip6tables']) {
        lines.push(sysctlIfPresent(`net.bridge.${k}`, 0));
      }
    }
    if (!nat && lab.ns.backends.includes(n)) {
      lines.push(
        sysctl('net.ipv4.conf.all.arp_ignore', 1),
        sysctl('net.ipv4.conf.default.arp_ignore', 1),
        sysctl('net.ipv4.conf.all.arp_announce', 2),
        sysctl('net.ipv4.conf.default.arp_announce', 2),
      );
    }
    lab.sh(n, 'sysctls', lines.join('\n'));
  }

  // The switch: br0 plus one veth per host, created here with the peer placed directly into the
  // host namespace as eth0 — the pair never exists in the caller's namespace.
  const off = OFFLOADS_OFF.join(' ');
  const portOf = (ns: string): string => ns.slice(lab.prefix.length + 1); // vg, c1, b1
  const sw = [
    'ip link add name br0 type bridge stp_state 0 forward_delay 0',
    sysctlIfPresent('net.ipv6.conf.br0.disable_ipv6', 1),
  ];
  for (const h of hosts) {
    const port = portOf(h.ns);
    sw.push(
      `ip link add name ${port} type veth peer name eth0 netns ${h.ns}`,
      sysctlIfPresent(`net.ipv6.conf.${port}.disable_ipv6`, 1),
      `ip link set dev ${port} master br0`,
      `ethtool -K ${port} ${off} >/dev/null`,
      `ip link set dev ${port} up`,
    );
  }
  sw.push('ip link set dev br0 up');
  lab.sh(lab.ns.switch, 'building the switch', sw.join('\n'));

  // Phase 2, hosts: interfaces, addresses, routes.
  const front = (host: number): string => `${NET_FRONT}.${host}/24`;
  for (const h of hosts) {
    const i = h.role === 'c' ? lab.ns.clients.indexOf(h.ns) : h.role === 'b' ? lab.ns.backends.indexOf(h.ns) : Math.max(0, lab.ns.nodes.indexOf(h.ns));
    const lines = [
      sysctlIfPresent('net.ipv6.conf.eth0.disable_ipv6', 1),
      sysctlIfPresent('net.ipv6.conf.lo.disable_ipv6', 1),
      sysctl('net.ipv4.conf.eth0.rp_filter', 0),
      sysctl('net.ipv4.conf.lo.rp_filter', 0),
      'ip link set dev lo up',
      `ethtool -K eth0 ${off} >/dev/null`,
    ];
    if (h.role === 'vg') {
      lines.push(`ip link set dev eth0 address ${macOf(0, VIPGATE_HOST + i)}`, `ip addr add ${front(VIPGATE_HOST + i)} dev eth0`);
    } else if (h.role === 'c') {
      lines.push(`ip link set dev eth0 address ${lab.mac.clients[i]}`, `ip addr add ${lab.addr.clients[i]}/24 dev eth0`);
    } else {
      lines.push(`ip link set dev eth0 address ${lab.mac.backends[i]}`, `ip addr add ${lab.addr.backends[i]}/24 dev eth0`);
      if (!nat) {
        // DSR: the VIPs live on lo so the kernel accepts frames vipgate steers here, and the
        // backend never answers (arp_ignore=1) nor advertises (arp_announce=2) them on the wire.
        for (const k of ['eth0', 'lo']) {
          lines.push(sysctl(`net.ipv4.conf.${k}.arp_ignore`, 1), sysctl(`net.ipv4.conf.${k}.arp_announce`, 2));
        }
        for (const v of vips) lines.push(`ip addr add ${v}/32 dev lo`);
      }
    }
    lines.push('ip link set dev eth0 up');
    if (h.role === 'b' && nat) {
      lines.push(`ip route add default via ${lab.addr.gateway} dev eth0`);
      if (i === 0) {
        // The direct baseline: b1 also sits on the clients' subnet. Its connected route there
        // would send nat replies (source 10.77.1.21) straight to the client, bypassing vipgate's
        // reverse rewrite — so traffic sourced from the backend address is policy-routed back
        // through the gateway, and only traffic from the direct address uses the shortcut.
        const me = lab.addr.backends[0];
        lines.push(
          `ip addr add ${lab.addr.direct}/24 dev eth0`,
          `ip route add ${NET_BACK}.0/24 dev eth0 src ${me} table ${NAT_B1_TABLE}`,
          `ip route add default via ${lab.addr.gateway} dev eth0 src ${me} table ${NAT_B1_TABLE}`,
          `ip rule add from ${me} lookup ${NAT_B1_TABLE} pref 100`,
        );
      }
    }
    lab.sh(h.ns, 'configuring the host', lines.join('\n'));
  }
}

/** Start every backend's HTTP server and wait for `listening`. */
function startServers(lab: LabImpl, log: (s: string) => void): Promise<void> {
  const serverJs = path.join(__dirname, 'http-server.js');
  if (!fs.existsSync(serverJs)) return Promise.reject(new Error(`lab: ${serverJs} is missing (run npx tsc -p tsconfig.json)`));
  return Promise.all(lab.ns.backends.map((ns, i) => new Promise<void>((resolve, reject) => {
    const name = lab.backendNames[i]!;
    const child = lab.spawn(ns, [process.execPath, serverJs, '--name', name, '--port', String(LAB_HTTP_PORT), '--exit-on-stdin-eof']);
    let out = '';
    const timer = setTimeout(() => fail(new Error('no "listening" within 10 s')), 10_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      reject(new Error(`lab: HTTP server ${name} in ${ns}: ${e.message}\n${lab.tailOf(child)}`));
    };
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening\n')) {
        clearTimeout(timer);
        log(`lab ${lab.prefix}: ${name} listening in ${ns} (pid ${child.pid})`);
        resolve();
      }
    });
    child.on('error', fail);
    child.on('exit', (code, sig) => fail(new Error(`exited (code ${code}, signal ${sig})`)));
  }))).then(() => undefined);
}

/** GET url from inside ns with a one-off Node client; returns the trimmed body or throws. */
export function httpGetIn(lab: Lab, ns: string, url: string, timeoutMs = 3000): string {
  const script = `
const http = require('node:http');
const req = http.get(process.argv[1], { agent: false, headers: { Connection: 'close' } }, (res) => {
  let b = ''; res.setEncoding('utf8'); res.on('data', (c) => b += c);
  res.on('end', () => { process.stdout.write(b); process.exit(res.statusCode === 200 ? 0 : 1); });
});
req.setTimeout(${timeoutMs}, () => { process.stderr.write('timeout'); process.exit(1); });
req.on('error', (e) => { process.stderr.write(e.code || e.message); process.exit(1); });`;
  const r = lab.exec(ns, [process.execPath, '-e', script, url], { timeoutMs: timeoutMs + 5000 });
  if (r.code !== 0) throw new Error(`GET ${url} in ${ns} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout.trim();
}

/** Whether the lab's ARP probe can run here: it sends through the libpcap binding (cap). */
export function canProbeArp(): { ok: true } | { ok: false; why: string } {
  try { require('cap'); return { ok: true }; } catch {
    return { ok: false, why: 'the ARP probe needs the libpcap binding (cap), which is not built: apt-get install -y libpcap-dev g++ make python3 && npm install' };
  }
}

/**
 * `count` ARP requests for `ip` from ns's eth0 (or `iface`), with the lab's own probe (scenarios/lab/arp-probe.ts)
 * rather than arping, whose two Debian flavours print and count differently. Resolves with the
 * replies (total, per request, their MACs); rejects if the probe could not run.
 */
export function arpProbe(lab: Lab, ns: string, ip: string, count: number, o: { intervalMs?: number; waitMs?: number; iface?: string } = {}): Promise<ArpProbeResult> {
  const probeJs = path.join(__dirname, 'arp-probe.js');
  return new Promise((resolve, reject) => {
    const child = lab.spawn(ns, [process.execPath, probeJs, '--iface', o.iface ?? 'eth0', '--count', String(count),
      '--interval-ms', String(o.intervalMs ?? 300), '--wait-ms', String(o.waitMs ?? 1000), ip]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(out) as ArpProbeResult);
      } catch (e) {
        reject(new Error(`arp probe for ${ip} from ${ns} failed (${(e as Error).message}): ${err.trim() || out.trim()}`));
      }
    });
  });
}

export async function createLab(o: LabOptions): Promise<Lab> {
  const opts = validateOptions(o);
  const log = o.log ?? ((): void => {});
  const swept = sweepStaleLabs(log);
  if (swept.length > 0) log(`lab: swept stale namespaces ${swept.join(', ')}`);
  const lab = new LabImpl({ ...opts, log });
  liveLabs.add(lab);
  hookExit();
  try {
    const t0 = Date.now();
    build(lab, opts.vips);
    log(`lab ${lab.prefix}: ${lab.mode} topology built in ${Date.now() - t0} ms`);
    await startServers(lab, log);
    // Each server must answer on its own address, asked from inside its own namespace.
    lab.ns.backends.forEach((ns, i) => {
      const body = httpGetIn(lab, ns, `http://${lab.addr.backends[i]}:${LAB_HTTP_PORT}/`);
      if (body !== lab.backendNames[i]) throw new Error(`lab: ${ns} answered ${JSON.stringify(body)}, expected ${lab.backendNames[i]}`);
    });
    log(`lab ${lab.prefix}: ready in ${Date.now() - t0} ms`);
    return lab;
  } catch (e) {
    lab.teardown();
    throw e;
  }
}

// ---- probing and sweeping ---------------------------------------------------------------------

let canRunCache: { ok: true } | { ok: false; why: string } | undefined;

/** Root, iproute2, ethtool, and a throwaway namespace we can configure and delete. Cached. */
export function canRunLab(): { ok: true } | { ok: false; why: string } {
  if (canRunCache) return canRunCache;
  canRunCache = probe();
  return canRunCache;
}

function probe(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: `platform is ${process.platform}, not linux` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, why: 'not running as root' };
  if (run('ip', ['-V']).code !== 0) return { ok: false, why: '`ip` (iproute2) is not installed' };
  if (run('ethtool', ['--version']).code !== 0) return { ok: false, why: '`ethtool` is not installed (apt-get install ethtool)' };
  const name = `${newPrefix()}-probe`;
  const add = run('ip', ['netns', 'add', name]);
  if (add.code !== 0) return { ok: false, why: `ip netns add failed: ${add.stderr.trim()}` };
  try {
    const r = run('ip', ['netns', 'exec', name, 'sh', '-ec', [
      sysctl('net.ipv4.conf.all.rp_filter', 0),
      'ip link add name vgpa type veth peer name vgpb',
      'ip link add name br0 type bridge',
      'ip link set dev vgpa master br0',
      'ethtool -K vgpb tx off rx off >/dev/null',
    ].join('\n')]);
    if (r.code !== 0) return { ok: false, why: `cannot configure a network namespace: ${r.stderr.trim()}` };
  } finally {
    deleteNetns([name]);
  }
  return { ok: true };
}

/**
 * Deletes namespaces left by crashed labs: names matching `vg<pid hex>x<4 hex>-<role>` whose
 * creator PID is not running and which hold no process. Returns the names deleted.
 */
export function sweepStaleLabs(log: (s: string) => void = () => {}): string[] {
  const stale: string[] = [];
  for (const n of listNetns()) {
    const m = STALE_NS_RE.exec(n);
    if (!m) continue;
    const pid = parseInt(m[1]!, 16);
    // A zombie creator counts as gone: it will never tear down (its parent just has not reaped it).
    if (pid === process.pid || (pidAlive(pid) && !processGone(pid))) continue;
    const pids = run('ip', ['netns', 'pids', n]).stdout.trim();
    if (pids) {
      log(`lab sweep: leaving ${n}: processes ${pids.split(/\s+/).join(', ')} still run inside it`);
      continue;
    }
    stale.push(n);
  }
  removeSharedState(stale);
  deleteNetns(stale);
  for (const f of sweepOrphanRegions()) log(`lab sweep: removed ${f} (its namespace is gone)`);
  const left = new Set(listNetns());
  return stale.filter((n) => !left.has(n));
}

// ---- load -------------------------------------------------------------------------------------

/**
 * n GETs of url from inside ns over fresh TCP connections (scenarios/lab/load.ts), at most
 * `concurrency` (default 16) in flight, each bounded by `timeoutMs` (default 3000).
 */
export function httpLoad(
  lab: Lab,
  ns: string,
  url: string,
  n: number,
  opts: { concurrency?: number; timeoutMs?: number } = {},
): Promise<LoadResult> {
  const loadJs = path.join(__dirname, 'load.js');
  const concurrency = opts.concurrency ?? 16;
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise((resolve, reject) => {
    const child = lab.spawn(ns, [process.execPath, loadJs, '--url', url, '--n', String(n),
      '--concurrency', String(concurrency), '--timeout-ms', String(timeoutMs), '--exit-on-stdin-eof']);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    // Worst case every request times out, one wave of `concurrency` at a time.
    const limit = Math.ceil(n / concurrency) * timeoutMs + 15_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`httpLoad: ${url} from ${ns}: no result within ${limit} ms`));
    }, limit);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`httpLoad: load generator in ${ns} exited ${code}: ${err.trim()}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as LoadResult);
      } catch {
        reject(new Error(`httpLoad: unreadable result from ${ns}: ${out.slice(0, 200)} ${err.trim()}`));
      }
    });
  });
}

/** Percentile (0..100) of a list of numbers, nearest-rank; NaN for an empty list. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// ---- human CLI --------------------------------------------------------------------------------

export function describeLab(lab: Lab): string {
  const rows: string[] = [
    `lab ${lab.prefix} (${lab.mode})`,
    `  switch   ${lab.ns.switch}  (br0)`,
  ];
  const gw = lab.addr.gateway ? `   owns (userspace only): ${lab.addr.gateway}` : '';
  if (lab.ns.nodes.length === 0) rows.push(`  vipgate  ${lab.ns.vipgate}  eth0 ${lab.addr.vipgate}/24  mac ${lab.mac.vipgate}${gw}`);
  lab.ns.nodes.forEach((n, i) => rows.push(`  node     ${n}  eth0 ${lab.addr.nodes[i]}/24  mac ${lab.mac.nodes[i]}`));
  if (lab.ns.nodes.length > 0 && lab.addr.gateway) rows.push(`  gateway  ${lab.addr.gateway}: answered (userspace only) by whichever node owns the VIPs`);
  lab.ns.clients.forEach((n, i) => rows.push(`  client   ${n}  eth0 ${lab.addr.clients[i]}/24  mac ${lab.mac.clients[i]}`));
  lab.ns.backends.forEach((n, i) => rows.push(
    `  backend  ${n}  eth0 ${lab.addr.backends[i]}/24  mac ${lab.mac.backends[i]}  http :${lab.httpPort} answers ${lab.backendNames[i]}` +
      (lab.mode === 'dsr' ? `  lo ${lab.addr.vips.join(', ')}` : '') +
      (lab.mode === 'nat' && i === 0 ? `  also ${lab.addr.direct}/24` : ''),
  ));
  rows.push(`  VIPs     ${lab.addr.vips.join(', ')}`, `  direct   ${lab.directUrl}`);
  rows.push(`  try:     ip netns exec ${lab.ns.clients[0]} curl -s ${lab.directUrl}`);
  return rows.join('\n');
}

async function cli(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (cmd === 'sweep') {
    const gone = sweepStaleLabs((s) => console.error(s));
    console.log(gone.length ? `deleted ${gone.join(' ')}` : 'no stale lab namespaces');
    return 0;
  }
  if (cmd === 'up') {
    const can = canRunLab();
    if (!can.ok) { console.error(`lab: cannot run: ${can.why}`); return 1; }
    const mode = (flag('--mode') ?? 'dsr') as LabMode;
    const o: LabOptions = { mode, log: (s) => console.error(s) };
    const c = flag('--clients'); if (c) o.clients = Number(c);
    const b = flag('--backends'); if (b) o.backends = Number(b);
    const v = flag('--vips'); if (v) o.vips = v.split(',');
    const nn = flag('--nodes'); if (nn) o.nodes = Number(nn);
    const lab = await createLab(o);
    console.log(describeLab(lab));
    console.log('Ctrl-C tears the lab down.');
    await new Promise<void>((resolve) => {
      const done = (): void => { lab.teardown(); resolve(); process.exit(0); };
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    return 0;
  }
  console.error('usage: node dist/scenarios/lab/lab.js up [--mode dsr|nat] [--clients N] [--backends N] [--vips A,B] [--nodes 2..8]\n' +
    '       node dist/scenarios/lab/lab.js sweep');
  return 2;
}

if (require.main === module) {
  cli(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}

// Long-lived TCP connections through vipgate, for issue 9's continuity checks (test/continuity-lab.test.ts,
// bench/continuity.bench.ts, scripts/soak-crash.sh): a server in every backend namespace
// (continuity-server.ts), and one client process (continuity-client.ts) holding
//   - N streaming downloads, paced, every byte checked end to end against a deterministic stream;
//   - M idle keep-alive connections, one request every few seconds, every answer checked;
// each reported per connection: bytes, errors, completed. Plus the events the checks apply while
// the workload runs (worker SIGKILL, whole restart, upgrade) and the process-model facts they
// need from `GET /v1/status` (worker.pid, sharedState), as crash-design.md specifies them.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab } from './lab';
import { startVipgate, VIPGATE_BIN, type StartVipgateOptions, type VipgateProc } from './vipgate';
import type { ClientPlan, ConnReport } from './continuity-client';

export type { ConnReport };

/** The continuity servers' port on every backend. */
export const CONTINUITY_PORT = 8080;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start continuity-server.js on every backend (port CONTINUITY_PORT) and wait until each listens. */
export async function startContinuityServers(lab: Lab): Promise<void> {
  const js = path.join(__dirname, 'continuity-server.js');
  if (!fs.existsSync(js)) throw new Error(`continuity: ${js} is missing (run npx tsc -p tsconfig.json)`);
  await Promise.all(lab.ns.backends.map((ns, i) => new Promise<void>((resolve, reject) => {
    const child = lab.spawn(ns, [process.execPath, js, '--name', lab.backendNames[i]!, '--port', String(CONTINUITY_PORT), '--exit-on-stdin-eof']);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`continuity server in ${ns}: no "listening" within 10 s`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening\n')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`continuity server in ${ns} exited (${code ?? sig})`)); });
  })));
}

/**
 * vipgate's config for the workload: VIP 1 in IP mode -> web1; VIP 2 port CONTINUITY_PORT ->
 * web2 (standby web3), so connections are spread over two backends and both service kinds.
 * Flow timeouts are long: an idle keep-alive connection must never expire between two requests.
 */
export function continuityConfigYaml(lab: Lab, extra = ''): string {
  const [v1, v2] = lab.addr.vips;
  if (!v2 || lab.backendNames.length < 3) throw new Error('continuity: the lab needs two VIPs and three backends');
  return [
    `# continuity workload config (${lab.mode}), written by scenarios/lab/continuity.ts`,
    `interface: ${lab.vipgateIf}`,
    `mode: ${lab.mode}`,
    `vips: [${lab.addr.vips.join(', ')}]`,
    lab.addr.gateway ? `nat_gateway: ${lab.addr.gateway}` : '',
    'backends:',
    ...lab.backendNames.map((n, i) => `  - { name: ${n}, ip: ${lab.addr.backends[i]} }`),
    'services:',
    `  - { vip: ${v1}, backend: ${lab.backendNames[0]} }`,
    `  - { vip: ${v2}, port: ${CONTINUITY_PORT}, active: ${lab.backendNames[1]}, standby: [${lab.backendNames[2]}] }`,
    'flows: { capacity: 65536, half_open_timeout: 60s, established_timeout: 1h, closing_timeout: 5s }',
    'announce: { count: 2, interval: 200ms }',
    extra,
  ].filter((l) => l !== '').join('\n') + '\n';
}

export interface WorkloadOptions {
  /** Client namespace (default c1). */
  ns?: string;
  streams: number;
  keepalives: number;
  /** Bytes per download (default 2 MiB). */
  streamBytes?: number;
  /** Bytes per second per download (default: streamBytes over 20 s). */
  rate?: number;
  /** Keep-alive request interval (default 2 s). */
  intervalMs?: number;
  /** No progress for this long is an error (default 20 s: longer than any outage TCP should ride out here). */
  stallMs?: number;
}

export interface Workload {
  /** The connections as opened (local addresses known). */
  opened: ConnReport[];
  progress(): Promise<ConnReport[]>;
  /** Keep-alives send their last request and close; waits for every download to end. */
  finish(timeoutMs?: number): Promise<ConnReport[]>;
  kill(): void;
}

/** Starts the client in `ns` with connections spread over both VIPs; resolves once all are open. */
export async function startWorkload(lab: Lab, o: WorkloadOptions): Promise<Workload> {
  const js = path.join(__dirname, 'continuity-client.js');
  const [v1, v2] = lab.addr.vips as [string, string];
  const bytes = o.streamBytes ?? 2 * 1024 * 1024;
  const plan: ClientPlan = {
    streams: Array.from({ length: o.streams }, (_, i) => ({ host: i % 2 ? v2 : v1, port: CONTINUITY_PORT, bytes, rate: o.rate ?? Math.ceil(bytes / 20), seed: 1000 + i })),
    keepalives: Array.from({ length: o.keepalives }, (_, i) => ({ host: i % 2 ? v2 : v1, port: CONTINUITY_PORT })),
    intervalMs: o.intervalMs ?? 2000,
    stallMs: o.stallMs ?? 20_000,
  };
  const ns = o.ns ?? 'c1';
  const child: ChildProcess = lab.spawn(ns, [process.execPath, js, JSON.stringify(plan)]);
  let buf = '', err = '';
  let exited: string | null = null;
  const waiting: Array<(m: { op: string; conns: ConnReport[] }) => void> = [];
  const early: Array<{ op: string; conns: ConnReport[] }> = [];
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      let m: { op: string; conns: ConnReport[] };
      try { m = JSON.parse(line) as typeof m; } catch { continue; }
      const w = waiting.shift();
      if (w) w(m); else early.push(m);
    }
  });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.on('exit', (code, sig) => { exited = `exited (${code ?? sig})`; });
  const next = (what: string, ms: number): Promise<{ op: string; conns: ConnReport[] }> => {
    const e = early.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`continuity client in ${ns}: no ${what} within ${ms} ms ${exited ?? ''} ${err.trim()}`)), ms);
      waiting.push((m) => { clearTimeout(t); resolve(m); });
    });
  };
  const opened = await next('open', (o.streams + o.keepalives) * 11_000 + 5000);
  const kill = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) { try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ } }
  };
  return {
    opened: opened.conns,
    async progress() { child.stdin!.write('progress\n'); return (await next('progress', 10_000)).conns; },
    async finish(timeoutMs = 120_000) { child.stdin!.write('stop\n'); return (await next('done', timeoutMs)).conns; },
    kill,
  };
}

export interface WorkloadSummary {
  streams: { total: number; completed: number; bytes: number; expected: number };
  keepalives: { total: number; completed: number; answers: number };
  /** Connections not completed, or with any error. */
  broken: ConnReport[];
  /** Longest wait for progress over all connections (ms). */
  longestWaitMs: number;
}

export function summarize(conns: ConnReport[]): WorkloadSummary {
  const s = conns.filter((c) => c.kind === 'stream'), k = conns.filter((c) => c.kind === 'keepalive');
  return {
    streams: { total: s.length, completed: s.filter((c) => c.completed).length, bytes: s.reduce((a, c) => a + c.bytes, 0), expected: s.reduce((a, c) => a + c.expected, 0) },
    keepalives: { total: k.length, completed: k.filter((c) => c.completed).length, answers: k.reduce((a, c) => a + c.answers, 0) },
    broken: conns.filter((c) => !c.completed || c.errors.length > 0),
    longestWaitMs: conns.reduce((a, c) => Math.max(a, c.longestWaitMs), 0),
  };
}

/**
 * Resolves with the ms it took once every connection still running has moved past where it was
 * in `before` (a download got more bytes, a keep-alive another answer); throws, naming the stuck
 * ones, when some have not within resumeMs. Connections with an error are left to the final summary.
 */
export async function allMove(w: Workload, before: ConnReport[], what: string, resumeMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const now = await w.progress();
    const stuck = now.filter((c, i) => {
      const b = before[i]!;
      if (c.errors.length > 0) return false;
      if (c.kind === 'stream') return c.bytes < c.expected && c.bytes <= b.bytes;
      return c.answers <= b.answers;
    });
    if (stuck.length === 0) return Date.now() - t0;
    if (Date.now() - t0 > resumeMs) throw new Error(`after ${what}: ${stuck.length} connections made no progress within ${resumeMs} ms:\n${connTable(stuck)}`);
    await sleep(200);
  }
}

/** One line per connection: id, kind, target, local, backend, bytes/expected, answers, completed, errors. */
export function connTable(conns: ConnReport[]): string {
  return conns.map((c) => `#${c.id} ${c.kind.padEnd(9)} ${c.target} from ${c.local ?? '-'} via ${c.backend ?? '-'}: ` +
    (c.kind === 'stream' ? `${c.bytes}/${c.expected} bytes` : `${c.answers}/${c.requests} answers`) +
    `, longest wait ${c.longestWaitMs} ms, ${c.completed ? 'completed' : 'NOT completed'}${c.errors.length ? `, errors: ${c.errors.join('; ')}` : ''}`).join('\n');
}

// ---- the process model (crash-design.md), as the API shows it ----------------------------------

/** GET /v1/status's worker (src/control/api-types.ts WorkerView): pid is null between two workers. */
export interface WorkerView { pid: number | null; startedAt?: string | null; restarts?: number; lastExit?: unknown; state?: string }
export interface ProcessModel {
  /** vipgate's (the supervisor's) PID. */
  pid: number;
  /** null: no packet worker (one process does everything). */
  worker: WorkerView | null;
  sharedState: { file: string; bytes: number; layoutVersion: number } | null;
}

/** What GET /v1/status says about the process model; worker/sharedState are null in a build without them. */
export function processModel(vg: VipgateProc): ProcessModel {
  const r = vg.api('GET', '/v1/status');
  if (r.status !== 200) throw new Error(`GET /v1/status: ${r.status} ${r.text.slice(0, 200)}`);
  const s = r.json as { pid: number; worker?: WorkerView | null; sharedState?: ProcessModel['sharedState'] };
  return { pid: s.pid, worker: s.worker ?? null, sharedState: s.sharedState ?? null };
}


/** Waits until the worker is a different process from `oldPid` and running; returns it. */
export async function waitNewWorker(vg: VipgateProc, oldPid: number, timeoutMs = 10_000): Promise<WorkerView> {
  const until = Date.now() + timeoutMs;
  let last: WorkerView | null = null;
  for (;;) {
    try { last = processModel(vg).worker; } catch { last = null; }
    if (last && last.pid !== null && last.pid !== oldPid && last.state === 'running') return last;
    if (Date.now() > until) throw new Error(`no new running worker within ${timeoutMs} ms after killing ${oldPid}: ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

/** SIGKILL the packet worker; resolves with the new worker once the supervisor has started it. */
export async function killWorker(vg: VipgateProc): Promise<{ old: number; now: WorkerView }> {
  const w = processModel(vg).worker;
  if (!w) throw new Error('this vipgate has no packet worker (GET /v1/status has no worker)');
  if (w.pid === null) throw new Error(`the packet worker is not running (state ${w.state})`);
  process.kill(w.pid, 'SIGKILL');
  return { old: w.pid, now: await waitNewWorker(vg, w.pid) };
}

/**
 * Whole restart: SIGKILL vipgate (its worker follows it), then `vipgate run` again on the same
 * config and arguments. Returns the new vipgate; the old one's files are removed.
 */
export async function wholeRestart(lab: Lab, vg: VipgateProc, yaml: string, args: string[], opts: StartVipgateOptions = {}): Promise<VipgateProc> {
  // After an upgrade the supervisor is no longer the process startVipgate started: ask the API.
  const m = (() => { try { return processModel(vg); } catch { return null; } })();
  const supervisor = m?.pid ?? vg.pid, worker = m?.worker?.pid ?? null;
  try { process.kill(supervisor, 'SIGKILL'); } catch { /* gone already */ }
  await waitGone(supervisor, 5000);
  await vg.stop();
  // The worker exits when its supervisor's IPC channel closes; wait for it so that the next
  // vipgate never shares the ring with a reader that is still on its way out.
  if (worker !== null) await waitGone(worker, 5000);
  return startVipgate(lab, yaml, args, opts);
}

/** Resolves once pid has exited (or after timeoutMs, throwing). */
export async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { process.kill(pid, 0); } catch { return; }
    let st = '';
    try { st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return; }
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return;
    if (Date.now() > until) throw new Error(`pid ${pid} still runs ${timeoutMs} ms after its supervisor died`);
    await sleep(20);
  }
}

/**
 * A second build of vipgate to upgrade to: this checkout's bin/, dist/, package.json and built
 * addons copied into a temporary directory (node_modules linked), as an operator would unpack a
 * new release beside the running one. Returns its bin/vipgate.js and a remover.
 */
export function copyBuild(): { bin: string; remove(): void } {
  const repo = path.resolve(path.dirname(VIPGATE_BIN), '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-build-'));
  for (const p of ['bin', 'dist', 'package.json', path.join('native-bindings', 'build')]) {
    fs.cpSync(path.join(repo, p), path.join(dir, p), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  return { bin: path.join(dir, 'bin', 'vipgate.js'), remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * `vipgate upgrade --to bin` against the running vipgate; resolves with the new supervisor's PID
 * (not a child of ours: the caller ends it by that PID) once the API answers from it.
 */
export async function upgrade(vg: VipgateProc, bin: string, timeoutMs = 30_000): Promise<number> {
  const before = processModel(vg).pid;
  const r = vg.cli(['upgrade', '--to', bin], { timeoutMs });
  if (r.code !== 0) throw new Error(`vipgate upgrade --to ${bin}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const m = processModel(vg);
      if (m.pid !== before) return m.pid;
    } catch { /* the API moves from the old process to the new one */ }
    if (Date.now() > until) throw new Error(`after vipgate upgrade the API still answers from pid ${before}`);
    await sleep(100);
  }
}

/** Whether `vipgate` in this build knows the upgrade command (its help lists it). */
export function hasUpgradeCommand(lab: Lab): boolean {
  const r = lab.exec('vg', [process.execPath, VIPGATE_BIN, 'help']);
  return /\bupgrade\b/.test(r.stdout + r.stderr);
}

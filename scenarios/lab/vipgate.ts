// Running vipgate itself in a lab: the lab's config, and `vipgate run` started inside the
// vipgate host's namespace with a status file, stopped by PID with SIGTERM.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { canRunLab, type ExecResult, type Lab } from './lab';
import type { CounterSnapshot } from '../../src/dataplane/counters';

const repo = path.resolve(__dirname, '..', '..', '..');
export const VIPGATE_BIN = path.join(repo, 'bin', 'vipgate.js');

/**
 * Whether vipgate can run live in a lab here: the lab itself (root, namespaces), the libpcap
 * binding, and the tools `vipgate run` calls (nft for its kernel filter, flock for its lock), so
 * that a missing one is named in the skip message rather than failing a start-up assertion.
 */
export function canRunVipgateLab(): { ok: true } | { ok: false; why: string } {
  const can = canRunLab();
  if (!can.ok) return can;
  try { require('cap'); } catch { return { ok: false, why: 'the libpcap binding (cap) is not built: apt-get install -y libpcap-dev g++ make python3 && npm install' }; }
  for (const [tool, pkg] of [['nft', 'nftables'], ['flock', 'util-linux']] as const) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return { ok: false, why: `\`${tool}\` is not installed (apt-get install ${pkg})` };
  }
  return { ok: true };
}

/**
 * The lab's vipgate config: VIP 1 in IP mode -> web1; VIP 2 port 80 in port mode -> web2 with
 * web3 (then web1) as standby. Backend MACs are left out: vipgate resolves them by ARP.
 */
export function labConfigYaml(lab: Lab, extra = ''): string {
  const [v1, v2] = lab.addr.vips;
  const backends = lab.backendNames.map((n, i) => `  - { name: ${n}, ip: ${lab.addr.backends[i]} }`).join('\n');
  const active2 = lab.backendNames[1] ?? lab.backendNames[0]!;
  const standby = lab.backendNames.slice(2).concat(lab.backendNames.slice(0, 1)).filter((n) => n !== active2);
  return [
    `# vipgate lab config (${lab.mode}), written by scenarios/lab/vipgate.ts`,
    `interface: ${lab.vipgateIf}`,
    `mode: ${lab.mode}`,
    `vips: [${lab.addr.vips.join(', ')}]`,
    lab.addr.gateway ? `nat_gateway: ${lab.addr.gateway}   # the backends' default route points here` : '',
    'backends:',
    backends,
    'services:',
    `  - { vip: ${v1}, backend: ${lab.backendNames[0]} }`,
    `  - { vip: ${v2}, port: ${lab.httpPort}, active: ${active2}, standby: [${standby.join(', ')}] }`,
    'flows: { capacity: 262144, closing_timeout: 5s }',
    'announce: { count: 2, interval: 200ms }',
    extra,
  ].filter((l) => l !== '').join('\n') + '\n';
}

export interface VipgateProc {
  proc: ChildProcess;
  /** vipgate's own PID (`ip netns exec` execs in place): signals go here, never by name. */
  pid: number;
  dir: string;
  /** The config file vipgate was started with (edit it, then SIGHUP or `vipgate reload`). */
  configFile: string;
  statusFile: string;
  /** Where the API is reached from inside the vipgate namespace, HOST:PORT (0.0.0.0 -> 127.0.0.1). */
  apiAddr: string;
  /** The bearer token vipgate was started with ($VIPGATE_API_TOKEN), or null. */
  token: string | null;
  /** Everything vipgate wrote to stderr so far. */
  log(): string;
  /** The stderr lines that are JSON objects (vipgate's structured log), parsed. */
  logRecords(): Array<Record<string, unknown>>;
  /** The last status written (counters), or null. */
  status(): (CounterSnapshot & { time: number }) | null;
  /** `vipgate ARGS --api <apiAddr> [--token T]` inside the vipgate namespace (synchronous). */
  cli(args: string[], opts?: { timeoutMs?: number }): ExecResult;
  /** `vipgate ARGS --json` as above; throws with vipgate's stderr unless it exits 0. */
  cliJson<T = unknown>(args: string[]): T;
  /** One HTTP request to the API from inside the vipgate namespace (`path` includes /v1, or is /metrics). */
  api(method: string, path: string, body?: unknown, opts?: { token?: string | null }): ApiReply;
  /** Sends `sig` to vipgate's PID (SIGHUP: reload; SIGKILL: crash it). */
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the exit code (null when killed by a signal) once vipgate has exited. */
  exited: Promise<number | null>;
  /** True while vipgate runs. */
  running(): boolean;
  /** SIGTERM by PID (SIGKILL after 10 s), wait for exit; returns the exit code and the final status. Idempotent. */
  stop(): Promise<{ code: number | null; status: (CounterSnapshot & { time: number }) | null; log: string }>;
}

export interface ApiReply {
  status: number;
  /** The body parsed as JSON, or null when it is not JSON (e.g. /metrics). */
  json: unknown;
  text: string;
}

export interface StartVipgateOptions {
  /** Bearer token, passed as $VIPGATE_API_TOKEN (needed when --api is not a loopback address). */
  token?: string;
  /** Extra environment for vipgate. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for "attached to" (default 15 s). */
  startTimeoutMs?: number;
  /** Another build's bin/vipgate.js to run instead of this checkout's (benchmarks compare builds). */
  bin?: string;
  /** The lab host to run in (default `vg`: the vipgate host, node 1 of a cluster lab); its CLI and API calls go there too. */
  ns?: string;
}

/** The HOST:PORT a client inside the vipgate namespace uses for `--api X` (default 127.0.0.1:9180). */
function apiAddrFrom(args: string[]): string {
  const i = args.indexOf('--api');
  const given = i >= 0 ? args[i + 1] : undefined;
  if (!given) return '127.0.0.1:9180';
  const m = /^(.*):(\d+)$/.exec(given);
  if (!m) return given;
  return (m[1] === '0.0.0.0' ? '127.0.0.1' : m[1]) + ':' + m[2];
}

// One request with fetch (Node >= 18), run inside a namespace: argv is method, url, token, body.
const API_REQUEST_JS = `
const [method, url, token, body] = process.argv.slice(1);
const headers = { accept: 'application/json' };
if (token) headers.authorization = 'Bearer ' + token;
if (body) headers['content-type'] = 'application/json';
fetch(url, { method, headers, body: body || undefined, signal: AbortSignal.timeout(8000) })
  .then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() })); })
  .catch((e) => { process.stderr.write(String((e.cause && e.cause.code) || e.message)); process.exit(1); });`;

export async function startVipgate(lab: Lab, yaml: string, args: string[] = [], opts: StartVipgateOptions = {}): Promise<VipgateProc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vipgate-${lab.prefix}-`));
  const ns = opts.ns ?? 'vg';
  const cfg = path.join(dir, 'vipgate.yaml');
  const statusFile = path.join(dir, 'status.json');
  fs.writeFileSync(cfg, yaml);
  const env = { ...process.env, ...(opts.env ?? {}) };
  if (opts.token !== undefined) env.VIPGATE_API_TOKEN = opts.token;
  const bin = opts.bin ?? VIPGATE_BIN;
  const proc = lab.spawn(ns, [process.execPath, bin, 'run', '--config', cfg, '--status-file', statusFile, ...args], { env });
  const pid = proc.pid;
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => { exited = code; r(code); }));
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  while (!/attached to /.test(err)) {
    if (exited !== undefined) throw new Error(`vipgate exited (${exited}) before attaching:\n${err}`);
    if (Date.now() > deadline || pid === undefined) {
      if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      throw new Error(`vipgate did not attach within ${(opts.startTimeoutMs ?? 15_000) / 1000} s:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Give the first gratuitous ARPs and backend resolutions a moment.
  await new Promise((r) => setTimeout(r, 400));
  const readStatus = () => { try { return JSON.parse(fs.readFileSync(statusFile, 'utf8')); } catch { return null; } };
  const apiAddr = apiAddrFrom(args);
  const token = env.VIPGATE_API_TOKEN || null;
  const cli = (cliArgs: string[], o: { timeoutMs?: number } = {}): ExecResult => lab.exec(ns,
    [process.execPath, bin, ...cliArgs, '--api', apiAddr, ...(token ? ['--token', token] : [])],
    { timeoutMs: o.timeoutMs ?? 15_000 });
  let stopping: ReturnType<VipgateProc['stop']> | null = null;
  return {
    proc, pid: pid!, dir, configFile: cfg, statusFile, apiAddr, token,
    log: () => err,
    logRecords: () => err.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
      try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; }
    }),
    status: readStatus,
    cli,
    cliJson<T>(cliArgs: string[]): T {
      const r = cli([...cliArgs, '--json']);
      if (r.code !== 0) throw new Error(`vipgate ${cliArgs.join(' ')} --json: exit ${r.code}: ${r.stderr.trim()}`);
      try { return JSON.parse(r.stdout) as T; } catch { throw new Error(`vipgate ${cliArgs.join(' ')} --json: not JSON: ${r.stdout.slice(0, 300)}`); }
    },
    api(method: string, p: string, body?: unknown, o: { token?: string | null } = {}): ApiReply {
      const tok = o.token === undefined ? token : o.token;
      const r = lab.exec(ns, [process.execPath, '-e', API_REQUEST_JS, method, `http://${apiAddr}${p}`, tok ?? '',
        body === undefined ? '' : JSON.stringify(body)], { timeoutMs: 15_000 });
      if (r.code !== 0) throw new Error(`API ${method} ${p}: ${r.stderr.trim() || `exit ${r.code}`}`);
      const { status, text } = JSON.parse(r.stdout) as { status: number; text: string };
      let json: unknown = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status, json, text };
    },
    signal(sig: NodeJS.Signals) {
      if (exited !== undefined || pid === undefined) throw new Error(`vipgate (pid ${pid}) has exited (${exited}); cannot send ${sig}`);
      process.kill(pid, sig);
    },
    exited: exit,
    running: () => exited === undefined,
    stop() {
      if (stopping) return stopping;
      stopping = (async () => {
        if (exited === undefined && pid) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
        const t = setTimeout(() => { if (exited === undefined && pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
        const code = await exit;
        clearTimeout(t);
        const status = readStatus();
        fs.rmSync(dir, { recursive: true, force: true });
        return { code, status, log: err };
      })();
      return stopping;
    },
  };
}

// ---- long-lived connections --------------------------------------------------------------------

/** Connections held open from a client namespace, each sending a keep-alive GET on demand. */
export interface HeldConnections {
  /** Local "ip:port" of each connection (as vipgate's flow table shows the client). */
  locals: string[];
  /** One GET on every connection (in parallel); per connection the body (backend name) or "ERR <why>". */
  request(): Promise<string[]>;
  /** Half-close every connection (FIN) and wait until each is fully closed. */
  close(): Promise<void>;
  /** Ends the holder process by PID (also done by lab teardown). */
  kill(): void;
}

// The holder: opens n TCP connections to host:port, then obeys stdin lines "req" and "close",
// answering each with one JSON line. Raw sockets, so a connection is exactly one flow.
const HOLDER_JS = `
const net = require('node:net');
const [host, port, n, host2] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const conns = [];
function open() {
  return new Promise((resolve) => {
    const c = { s: net.connect({ host, port }), buf: Buffer.alloc(0), want: null, err: null, closed: false, onClose: [] };
    c.s.setNoDelay(true);
    const t = setTimeout(() => { c.err = 'connect timeout'; c.s.destroy(); resolve(c); }, 4000);
    c.s.on('connect', () => { clearTimeout(t); c.local = c.s.localAddress + ':' + c.s.localPort; resolve(c); });
    c.s.on('data', (d) => { c.buf = Buffer.concat([c.buf, d]); parse(c); });
    c.s.on('error', (e) => { c.err = e.code || e.message; clearTimeout(t); resolve(c); if (c.want) c.want('ERR ' + c.err); });
    c.s.on('close', () => { c.closed = true; if (c.want) c.want('ERR closed'); for (const f of c.onClose) f(); });
    conns.push(c);
  });
}
function parse(c) {
  const h = c.buf.indexOf('\\r\\n\\r\\n');
  if (h < 0 || !c.want) return;
  const head = c.buf.subarray(0, h).toString();
  const m = /content-length:\\s*(\\d+)/i.exec(head);
  const len = m ? Number(m[1]) : 0;
  if (c.buf.length < h + 4 + len) return;
  const body = c.buf.subarray(h + 4, h + 4 + len).toString().trim();
  c.buf = c.buf.subarray(h + 4 + len);
  const w = c.want; c.want = null; w(/^HTTP\\/1\\.1 200/.test(head) ? body : 'ERR ' + head.split('\\r\\n')[0]);
}
function request(c) {
  return new Promise((resolve) => {
    if (c.err || c.closed) return resolve('ERR ' + (c.err || 'closed'));
    const t = setTimeout(() => { c.want = null; resolve('ERR timeout'); }, 4000);
    c.want = (r) => { clearTimeout(t); resolve(r); };
    c.s.write('GET / HTTP/1.1\\r\\nHost: ' + host2 + '\\r\\nConnection: keep-alive\\r\\n\\r\\n');
  });
}
(async () => {
  for (let i = 0; i < n; i++) await open();
  out({ op: 'open', locals: conns.map((c) => c.local || null), errors: conns.filter((c) => c.err).map((c) => c.err) });
  let lines = '';
  process.stdin.on('data', async (d) => {
    lines += d;
    let i;
    while ((i = lines.indexOf('\\n')) >= 0) {
      const cmd = lines.slice(0, i).trim(); lines = lines.slice(i + 1);
      if (cmd === 'req') out({ op: 'req', results: await Promise.all(conns.map(request)) });
      else if (cmd === 'close') {
        await Promise.all(conns.map((c) => new Promise((r) => { if (c.closed) return r(); c.onClose.push(r); c.s.end(); setTimeout(() => { c.s.destroy(); r(); }, 5000); })));
        out({ op: 'closed' });
      }
    }
  });
  process.stdin.on('end', () => process.exit(0));
})();`;

/**
 * Open `n` TCP connections from namespace `ns` to host:port (e.g. a VIP and the lab's HTTP port),
 * opened one after another, and keep them open; each sends a keep-alive GET when asked. Throws if
 * any connection fails to open.
 */
export async function holdConnections(lab: Lab, ns: string, host: string, port: number, n: number): Promise<HeldConnections> {
  const child = lab.spawn(ns, [process.execPath, '-e', HOLDER_JS, host, String(port), String(n), host]);
  let buf = '';
  const waiting: Array<(o: Record<string, unknown>) => void> = [];
  const early: Array<Record<string, unknown>> = [];
  let exitedWith: string | null = null;
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      let o: Record<string, unknown>;
      try { o = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
      const w = waiting.shift();
      if (w) w(o); else early.push(o);
    }
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.on('exit', (code, sig) => { exitedWith = `exited (${code ?? sig}) ${err.trim()}`; });
  const next = (what: string, ms: number): Promise<Record<string, unknown>> => {
    const e = early.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`holdConnections from ${ns}: no answer to ${what} within ${ms} ms ${exitedWith ?? ''} ${err.trim()}`)), ms);
      waiting.push((o) => { clearTimeout(t); resolve(o); });
    });
  };
  const opened = await next('open', n * 5000 + 5000);
  const errors = opened.errors as string[];
  if (errors.length) {
    child.kill('SIGKILL');
    throw new Error(`holdConnections from ${ns} to ${host}:${port}: ${errors.length} of ${n} connections failed: ${errors.join(', ')}`);
  }
  const kill = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
    }
  };
  return {
    locals: opened.locals as string[],
    async request() {
      child.stdin!.write('req\n');
      return (await next('req', 10_000)).results as string[];
    },
    async close() {
      child.stdin!.write('close\n');
      await next('close', 15_000);
    },
    kill,
  };
}

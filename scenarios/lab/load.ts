// The lab's load generator: n HTTP GETs, each over a FRESH TCP connection (no agent, no
// keep-alive), at most `concurrency` in flight, each bounded by its own timeout. Runs inside a
// client namespace (lab.ts `httpLoad` starts it with `ip netns exec`) and prints one JSON
// object on stdout:
//
//   { ok, failed, byBody: { web1: 67, ... }, latenciesMs: [...connect times...],
//     totalMs: [...whole request times...], elapsedMs, errors: ["ETIMEDOUT x3", ...] }
//
// latenciesMs[i] is the TCP connect time of the i-th successful request (from the request's
// start to the socket's 'connect' event, i.e. SYN out to SYN-ACK in plus a little scheduling);
// totalMs[i] is the same request's time until its body ended. Failed requests contribute only
// to `failed` and `errors`.
//
//   node dist/scenarios/lab/load.js --url http://10.77.0.100/ --n 1000
//       [--concurrency 32] [--timeout-ms 3000] [--exit-on-stdin-eof]
//
// Paced (open loop, for failover measurements): --rate R --duration-ms D starts R requests per
// second for D ms whatever the earlier ones are doing (a stuck connection does not slow the
// others down, as it would in the closed loop above), and adds `records`: one per request,
// { at: wall-clock start (ms since the epoch, fractional), connectMs (-1 if it never connected),
// ok, body, error }, so a benchmark can line requests up with the moment it killed a backend.

import * as http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface LoadResult {
  ok: number;
  failed: number;
  byBody: Record<string, number>;
  /** TCP connect time of each successful request, ms. */
  latenciesMs: number[];
  /** Whole request time (start to end of body) of each successful request, ms. */
  totalMs: number[];
  /** Wall time of the whole run inside the load generator, ms. */
  elapsedMs: number;
  /** Distinct failure reasons with counts, e.g. "ECONNREFUSED x3". */
  errors: string[];
}

interface LoadArgs { url: string; n: number; concurrency: number; timeoutMs: number; exitOnStdinEof: boolean; rate: number; durationMs: number }

/** One request of a paced run. */
export interface LoadRecord { at: number; connectMs: number; ok: boolean; body: string; error: string }
export interface PacedResult extends LoadResult { records: LoadRecord[] }

function parseArgs(argv: string[]): LoadArgs {
  const out: LoadArgs = { url: '', n: 1, concurrency: 32, timeoutMs: 3000, exitOnStdinEof: false, rate: 0, durationMs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--url' && v !== undefined) { out.url = v; i++; }
    else if (a === '--n' && v !== undefined) { out.n = Number(v); i++; }
    else if (a === '--concurrency' && v !== undefined) { out.concurrency = Number(v); i++; }
    else if (a === '--timeout-ms' && v !== undefined) { out.timeoutMs = Number(v); i++; }
    else if (a === '--rate' && v !== undefined) { out.rate = Number(v); i++; }
    else if (a === '--duration-ms' && v !== undefined) { out.durationMs = Number(v); i++; }
    else if (a === '--exit-on-stdin-eof') out.exitOnStdinEof = true;
    else throw new Error(`load: unknown or incomplete argument ${JSON.stringify(a)}`);
  }
  if (!out.url) throw new Error('load: --url is required');
  for (const k of ['n', 'concurrency', 'timeoutMs'] as const) {
    if (!Number.isInteger(out[k]) || out[k] < 1) throw new Error(`load: --${k} must be a positive integer, got ${out[k]}`);
  }
  if ((out.rate > 0) !== (out.durationMs > 0) || !Number.isFinite(out.rate) || !Number.isInteger(out.durationMs) || out.rate < 0 || out.rate > 10_000) {
    throw new Error('load: --rate (1..10000 per second) and --duration-ms (a positive integer) go together');
  }
  return out;
}

interface One { ok: boolean; body: string; connectMs: number; totalMs: number; error: string }

function oneRequest(url: URL, timeoutMs: number): Promise<One> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connectMs = -1;
    let done = false;
    const finish = (r: Omit<One, 'connectMs' | 'totalMs'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, connectMs, totalMs: performance.now() - t0 });
    };
    const req = http.request({
      host: url.hostname,
      port: url.port || 80,
      path: url.pathname + url.search,
      method: 'GET',
      agent: false, // a new TCP connection per request
      headers: { Connection: 'close' },
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, body: '', error: connectMs < 0 ? 'timeout (no connect)' : 'timeout (after connect)' });
    }, timeoutMs);
    req.on('socket', (s) => {
      s.once('connect', () => { connectMs = performance.now() - t0; });
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, body: '', error: e.code ?? e.message }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, body: '', error: e.code ?? e.message }));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8').trim();
        if (res.statusCode === 200) finish({ ok: true, body, error: '' });
        else finish({ ok: false, body, error: `HTTP ${res.statusCode}` });
      });
    });
    req.end();
  });
}

/** Count one request's outcome into the result. */
function tally(result: LoadResult, errorCounts: Map<string, number>, r: One): void {
  if (r.ok) {
    result.ok++;
    result.byBody[r.body] = (result.byBody[r.body] ?? 0) + 1;
    result.latenciesMs.push(r.connectMs);
    result.totalMs.push(r.totalMs);
  } else {
    result.failed++;
    errorCounts.set(r.error, (errorCounts.get(r.error) ?? 0) + 1);
  }
}

export async function runLoad(urlText: string, n: number, concurrency: number, timeoutMs: number): Promise<LoadResult> {
  const url = new URL(urlText);
  const result: LoadResult = { ok: 0, failed: 0, byBody: {}, latenciesMs: [], totalMs: [], elapsedMs: 0, errors: [] };
  const errorCounts = new Map<string, number>();
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      tally(result, errorCounts, await oneRequest(url, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  result.elapsedMs = performance.now() - t0;
  result.errors = [...errorCounts].map(([e, c]) => `${e} x${c}`);
  return result;
}

/** Open loop: `rate` fresh-connection requests per second for `durationMs`, each recorded. */
export async function runPaced(urlText: string, rate: number, durationMs: number, timeoutMs: number): Promise<PacedResult> {
  const url = new URL(urlText);
  const result: PacedResult = { ok: 0, failed: 0, byBody: {}, latenciesMs: [], totalMs: [], elapsedMs: 0, errors: [], records: [] };
  const errorCounts = new Map<string, number>();
  const t0 = performance.now();
  const gap = 1000 / rate;
  const pending: Array<Promise<void>> = [];
  for (let i = 0; ; i++) {
    const due = t0 + i * gap;
    if (due - t0 >= durationMs) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = performance.timeOrigin + performance.now();
    pending.push(oneRequest(url, timeoutMs).then((r) => {
      result.records.push({ at, connectMs: r.connectMs, ok: r.ok, body: r.body, error: r.error });
      tally(result, errorCounts, r);
    }));
  }
  await Promise.all(pending);
  result.records.sort((a, b) => a.at - b.at);
  result.elapsedMs = performance.now() - t0;
  result.errors = [...errorCounts].map(([e, c]) => `${e} x${c}`);
  return result;
}

async function main(): Promise<void> {
  let args: LoadArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  if (args.exitOnStdinEof) {
    process.stdin.on('end', () => process.exit(3));
    process.stdin.resume();
  }
  const r = args.rate > 0 ? await runPaced(args.url, args.rate, args.durationMs, args.timeoutMs) : await runLoad(args.url, args.n, args.concurrency, args.timeoutMs);
  process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0));
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`load: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}

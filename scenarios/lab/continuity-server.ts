// The continuity workload's backend (scenarios/lab/continuity.ts): an HTTP/1.1 server in a
// backend namespace that serves
//   GET /stream?bytes=N&rate=BPS&seed=S   N bytes of the deterministic stream streamBytes(S, ...)
//                                          paced at about BPS bytes per second (so a download
//                                          lasts long enough to live through a crash or restart)
//   GET /ping                              its own name ("web1\n"), keep-alive
// Idle keep-alive connections are kept for 10 minutes (Node's default of 5 s would close them
// between two of the workload's requests, and the close would look like a broken connection).
//
//   ip netns exec NS node dist/scenarios/lab/continuity-server.js --name web1 --port 8080 [--exit-on-stdin-eof]
//
// Prints `listening` on stdout once bound.

import * as http from 'node:http';
import { fillStream } from './continuity-stream';

/** Bytes per paced write: small enough that a stream is steady, large enough to be cheap. */
const CHUNK = 16 * 1024;
const MAX_BYTES = 1 << 30;

function main(): void {
  const argv = process.argv.slice(2);
  const arg = (k: string): string | undefined => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const name = arg('--name');
  const port = Number(arg('--port') ?? 8080);
  if (!name || !Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write('continuity-server: usage: --name NAME --port PORT [--exit-on-stdin-eof]\n');
    process.exit(2);
  }
  const pong = Buffer.from(`${name}\n`);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    req.resume();
    if (url.pathname === '/ping') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': pong.length, 'X-Backend': name });
      res.end(pong);
      return;
    }
    if (url.pathname !== '/stream') {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
      return;
    }
    const bytes = Number(url.searchParams.get('bytes'));
    const rate = Number(url.searchParams.get('rate') ?? 0);
    const seed = Number(url.searchParams.get('seed') ?? 0) >>> 0;
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_BYTES || !(rate >= 0)) {
      res.writeHead(400, { 'Content-Length': 0 });
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes, 'X-Backend': name });
    const t0 = Date.now();
    let sent = 0;
    let stopped = false;
    res.on('close', () => { stopped = true; });
    const chunk = Buffer.alloc(CHUNK);
    const pump = (): void => {
      while (!stopped && sent < bytes) {
        // Pacing: never ahead of rate x elapsed time.
        if (rate > 0) {
          const due = ((sent + 1) / rate) * 1000 - (Date.now() - t0);
          if (due > 0) { setTimeout(pump, Math.min(due, 50)); return; }
        }
        const n = Math.min(CHUNK, bytes - sent);
        fillStream(seed, sent, chunk, 0, n);
        sent += n;
        // Copy: the socket may keep the buffer queued while we refill ours.
        const more = res.write(Buffer.from(chunk.subarray(0, n)));
        if (!more) { res.once('drain', pump); return; }
      }
      if (!stopped && sent >= bytes) res.end();
    };
    pump();
  });
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 610_000;
  server.requestTimeout = 0;
  server.on('clientError', (_e, socket) => socket.destroy());
  server.on('error', (e) => { process.stderr.write(`continuity-server ${name}: ${e.message}\n`); process.exit(1); });
  const stop = (): void => { server.closeAllConnections(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (argv.includes('--exit-on-stdin-eof')) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
  server.listen({ port, host: '0.0.0.0', backlog: 1024 }, () => process.stdout.write('listening\n'));
}

if (require.main === module) main();

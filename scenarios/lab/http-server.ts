// A tiny HTTP backend for the namespace lab: every request is answered 200 with a body of the
// server's own name ("web1\n"), so a client can tell which backend served it. Connections are
// closed after each response unless the request asks for keep-alive explicitly
// (`Connection: keep-alive`), because the lab measures fresh TCP connections.
//
//   ip netns exec NS node dist/scenarios/lab/http-server.js --name web1 --port 80
//       [--host 0.0.0.0] [--exit-on-stdin-eof]
//
// Prints `listening` on stdout once the socket is bound (the lab waits for that line).
// `?delay=MS` holds the answer MS milliseconds (at most 60 s) — for tests that need a flow to
// stay open while something else happens (a failover, a worker restart). With
// `--exit-on-stdin-eof` the server exits when its stdin closes, i.e. when the lab process that
// started it dies without a chance to clean up (SIGKILL), so no server outlives its lab.

import * as http from 'node:http';

interface ServerArgs { name: string; port: number; host: string; exitOnStdinEof: boolean }

function parseArgs(argv: string[]): ServerArgs {
  const out: ServerArgs = { name: '', port: 80, host: '0.0.0.0', exitOnStdinEof: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--name' && v !== undefined) { out.name = v; i++; }
    else if (a === '--port' && v !== undefined) { out.port = Number(v); i++; }
    else if (a === '--host' && v !== undefined) { out.host = v; i++; }
    else if (a === '--exit-on-stdin-eof') out.exitOnStdinEof = true;
    else throw new Error(`http-server: unknown or incomplete argument ${JSON.stringify(a)}`);
  }
  if (!out.name) throw new Error('http-server: --name is required');
  if (!Number.isInteger(out.port) || out.port < 1 || out.port > 65535) throw new Error(`http-server: bad --port ${out.port}`);
  return out;
}

function main(): void {
  let args: ServerArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  const body = Buffer.from(`${args.name}\n`);
  let served = 0;

  const server = http.createServer((req, res) => {
    served++;
    const keepAlive = /\bkeep-alive\b/i.test(req.headers.connection ?? '');
    let delay = 0;
    const q = req.url?.indexOf('?') ?? -1;
    if (q >= 0) {
      const d = new URLSearchParams(req.url!.slice(q + 1)).get('delay');
      if (d !== null && /^\d+$/.test(d)) delay = Math.min(Number(d), 60_000);
    }
    const answer = (): void => {
      res.writeHead(200, {
        'Content-Type': 'text/plain',
        'Content-Length': body.length,
        'X-Backend': args.name,
        Connection: keepAlive ? 'keep-alive' : 'close',
      });
      res.end(body);
    };
    // Drain any request body before answering so a close never resets unread data.
    req.resume();
    req.on('end', () => (delay > 0 ? setTimeout(answer, delay) : answer()));
  });
  // Thousands of short connections: no idle connection should pin a socket for long, and the
  // accept queue must absorb bursts (the kernel caps backlog at net.core.somaxconn).
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 70_000;
  server.on('clientError', (_err, socket) => socket.destroy());

  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGUSR2', () => process.stderr.write(`${args.name}: served ${served}\n`));
  if (args.exitOnStdinEof) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  server.on('error', (e) => {
    process.stderr.write(`http-server ${args.name}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen({ port: args.port, host: args.host, backlog: 4096 }, () => {
    process.stdout.write('listening\n');
  });
}

if (require.main === module) main();

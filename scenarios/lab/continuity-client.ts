// The continuity workload's client (scenarios/lab/continuity.ts starts it in a client namespace).
// One raw TCP socket per connection, so that a connection is exactly one flow through vipgate and
// nothing (an HTTP agent) can quietly replace a broken connection with a new one:
//   stream     GET /stream?bytes=N&rate=R&seed=S; every byte is checked against the stream
//              (continuity-stream.ts) as it arrives; completed when all N bytes arrived intact
//              and the connection ended cleanly afterwards.
//   keepalive  GET /ping every intervalMs on the same connection, each answer checked (status
//              200, the same backend name as the first answer); completed when it was closed by
//              us (FIN both ways) after `stop` with no error.
// Any reset, timeout, stall, wrong byte or wrong answer is an error of that connection.
//
// stdin lines: `progress` -> one JSON line {op:'progress', conns}; `stop` -> keep-alives finish
// their last request and close, then (when every stream has ended) {op:'done', conns} and exit.
// Prints {op:'open', conns} once every connection is established (or failed to).
//
//   node continuity-client.js '<json ClientPlan>'

import * as net from 'node:net';
import { checkStream } from './continuity-stream';

export interface ClientPlan {
  streams: Array<{ host: string; port: number; bytes: number; rate: number; seed: number }>;
  keepalives: Array<{ host: string; port: number }>;
  intervalMs: number;
  /** A stream with no byte for this long, or an answer that takes longer, is an error. */
  stallMs: number;
}

export interface ConnReport {
  id: number;
  kind: 'stream' | 'keepalive';
  target: string;
  /** Local ip:port (the client side of the flow). */
  local: string | null;
  backend: string | null;
  /** Stream: body bytes received and checked; keepalive: answers received. */
  bytes: number;
  expected: number;
  requests: number;
  answers: number;
  errors: string[];
  completed: boolean;
  /** Longest wait for progress (ms): between two stream reads, or for one answer. */
  longestWaitMs: number;
}

interface Conn extends ConnReport {
  sock: net.Socket;
  buf: Buffer;
  headerDone: boolean;
  last: number;
  ended: boolean;
  pending: { since: number } | null;
  /** When we started to close it (keepalive: our FIN; stream: its last byte arrived), or 0. */
  closingSince: number;
  done: Promise<void>;
}

function main(): void {
  const plan = JSON.parse(process.argv[2] ?? '{}') as ClientPlan;
  const out = (o: unknown): void => { process.stdout.write(JSON.stringify(o) + '\n'); };
  const conns: Conn[] = [];
  let stopping = false;
  const report = (): ConnReport[] => conns.map(({ id, kind, target, local, backend, bytes, expected, requests, answers, errors, completed, longestWaitMs }) =>
    ({ id, kind, target, local, backend, bytes, expected, requests, answers, errors, completed, longestWaitMs }));
  const fail = (c: Conn, why: string): void => {
    if (c.errors.length < 5) c.errors.push(why);
    c.sock.destroy();
  };

  const open = (kind: 'stream' | 'keepalive', host: string, port: number, expected: number, seed: number, rate: number): Promise<void> => new Promise((connected) => {
    const sock = net.connect({ host, port });
    let finish!: () => void;
    const c: Conn = {
      id: conns.length, kind, target: `${host}:${port}`, local: null, backend: null, bytes: 0, expected, requests: 0, answers: 0,
      errors: [], completed: false, longestWaitMs: 0, sock, buf: Buffer.alloc(0), headerDone: false, last: Date.now(), ended: false,
      pending: null, closingSince: 0, done: new Promise<void>((r) => { finish = r; }),
    };
    conns.push(c);
    sock.setNoDelay(true);
    const connectTimer = setTimeout(() => { fail(c, 'connect timeout'); connected(); }, 10_000);
    sock.on('connect', () => {
      clearTimeout(connectTimer);
      c.local = `${sock.localAddress}:${sock.localPort}`;
      c.last = Date.now();
      if (kind === 'stream') sock.write(`GET /stream?bytes=${expected}&rate=${rate}&seed=${seed} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      else ask(c);
      connected();
    });
    sock.on('data', (d: Buffer) => (kind === 'stream' ? onStream(c, d, seed) : onAnswer(c, d)));
    sock.on('end', () => { c.ended = true; sock.end(); });
    sock.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(connectTimer); fail(c, e.code ?? e.message); connected(); });
    sock.on('close', () => {
      clearTimeout(connectTimer);
      if (c.errors.length === 0) {
        if (kind === 'stream' && c.bytes !== c.expected) c.errors.push(`closed after ${c.bytes} of ${c.expected} bytes`);
        if (kind === 'keepalive' && !stopping) c.errors.push('closed by the peer');
        if (kind === 'keepalive' && c.pending) c.errors.push('closed with a request unanswered');
      }
      c.completed = c.errors.length === 0 && c.ended;
      finish();
    });
  });

  const onStream = (c: Conn, d: Buffer, seed: number): void => {
    const now = Date.now();
    c.longestWaitMs = Math.max(c.longestWaitMs, now - c.last);
    c.last = now;
    let body = d;
    if (!c.headerDone) {
      c.buf = Buffer.concat([c.buf, d]);
      const h = c.buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      const head = c.buf.subarray(0, h).toString();
      if (!/^HTTP\/1\.1 200/.test(head)) return fail(c, `answer ${head.split('\r\n')[0]}`);
      c.backend = /x-backend:\s*(\S+)/i.exec(head)?.[1] ?? null;
      c.headerDone = true;
      body = c.buf.subarray(h + 4);
      c.buf = Buffer.alloc(0);
    }
    if (c.bytes + body.length > c.expected) return fail(c, `${c.bytes + body.length - c.expected} bytes more than asked for`);
    const bad = checkStream(seed, c.bytes, body, 0, body.length);
    if (bad >= 0) return fail(c, `wrong byte at offset ${bad}`);
    c.bytes += body.length;
    if (c.bytes === c.expected) c.closingSince = now;
  };

  const ask = (c: Conn): void => {
    if (stopping) { closeKeepalive(c); return; }
    c.requests++;
    c.pending = { since: Date.now() };
    c.sock.write(`GET /ping HTTP/1.1\r\nHost: ${c.target}\r\nConnection: keep-alive\r\n\r\n`);
  };

  const closeKeepalive = (c: Conn): void => {
    c.closingSince = Date.now();
    c.sock.end();
  };

  const onAnswer = (c: Conn, d: Buffer): void => {
    c.buf = Buffer.concat([c.buf, d]);
    const h = c.buf.indexOf('\r\n\r\n');
    if (h < 0) return;
    const head = c.buf.subarray(0, h).toString();
    const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (c.buf.length < h + 4 + len) return;
    const body = c.buf.subarray(h + 4, h + 4 + len).toString().trim();
    c.buf = c.buf.subarray(h + 4 + len);
    if (!c.pending) return fail(c, 'an answer nobody asked for');
    const waited = Date.now() - c.pending.since;
    c.longestWaitMs = Math.max(c.longestWaitMs, waited);
    c.pending = null;
    if (!/^HTTP\/1\.1 200/.test(head)) return fail(c, `answer ${head.split('\r\n')[0]}`);
    if (c.backend === null) c.backend = body;
    else if (body !== c.backend) return fail(c, `answered by ${body}, was ${c.backend}`);
    c.answers++;
    c.bytes = c.answers;
    setTimeout(() => ask(c), Math.max(0, plan.intervalMs - waited));
  };

  // Stalls: a stream with no byte, an answer outstanding, or a close not completed (FIN both
  // ways), for longer than stallMs.
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const c of conns) {
      if (c.sock.destroyed) continue;
      if (c.kind === 'stream' && c.bytes < c.expected && now - c.last > plan.stallMs) fail(c, `stalled: no byte for ${now - c.last} ms at ${c.bytes} of ${c.expected}`);
      if (c.kind === 'keepalive' && c.pending && now - c.pending.since > plan.stallMs) fail(c, `no answer within ${now - c.pending.since} ms (request ${c.requests})`);
      if (c.closingSince > 0 && now - c.closingSince > plan.stallMs) fail(c, `not closed ${now - c.closingSince} ms after ${c.kind === 'stream' ? 'its last byte' : 'our FIN'}`);
    }
  }, 250);

  (async () => {
    // One after another: a burst of SYNs is not what this workload is about.
    for (const s of plan.streams) await open('stream', s.host, s.port, s.bytes, s.seed, s.rate);
    for (const k of plan.keepalives) await open('keepalive', k.host, k.port, 0, 0, 0);
    out({ op: 'open', conns: report() });
  })();

  let lines = '';
  process.stdin.on('data', (d: Buffer) => {
    lines += d.toString();
    let i;
    while ((i = lines.indexOf('\n')) >= 0) {
      const cmd = lines.slice(0, i).trim();
      lines = lines.slice(i + 1);
      if (cmd === 'progress') out({ op: 'progress', conns: report() });
      else if (cmd === 'stop' && !stopping) {
        stopping = true;
        for (const c of conns) if (c.kind === 'keepalive' && !c.pending && !c.sock.destroyed) closeKeepalive(c);
        void Promise.all(conns.map((c) => c.done)).then(() => {
          clearInterval(watchdog);
          out({ op: 'done', conns: report() });
          process.exit(0);
        });
      }
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

if (require.main === module) main();

// The raw SYN probe and its connect fallback against this host's real kernel on loopback: a
// listening port answers (and the server never accepts a connection: the handshake never
// completes), a closed port is refused, nothing else on the host's TCP confuses the probe.
// The raw probe needs CAP_NET_RAW: skipped with the reason otherwise.
import t from 'tap';
import * as net from 'node:net';
import { SynProber, ConnectProber, openProber, segment } from '../src/control/health/syn-probe';
import { tcpChecksumOk, TCP_SYN } from '../src/wire/tcp';
import { parseIpv4 } from '../src/wire/addr';

const LO = parseIpv4('127.0.0.1')!;

async function server(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  let accepted = 0;
  const srv = net.createServer((s) => { accepted++; s.on('error', () => {}); s.destroy(); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, accepted: () => accepted, close: () => new Promise((r) => srv.close(() => r())) };
}

/** A port nothing listens on (bound then released). */
async function closedPort(): Promise<number> {
  const s = await server();
  await s.close();
  return s.port;
}

t.test('the probe SYN: MSS option, checksum over the pseudo-header', async (t) => {
  const b = segment(parseIpv4('10.0.0.2')!, parseIpv4('10.0.1.21')!, 40000, 80, 0x01020304, 0, TCP_SYN);
  t.equal(b.length, 24);
  t.equal(b[12], 6 << 4, 'data offset 6 words');
  t.same([...b.subarray(20, 24)], [2, 4, 0x05, 0xb4], 'MSS 1460');
  t.ok(tcpChecksumOk(b, 0, 24, parseIpv4('10.0.0.2')!, parseIpv4('10.0.1.21')!), 'checksum verifies');
});

let raw: SynProber | null = null;
let why = '';
try { raw = SynProber.open(); } catch (e) { why = (e as Error).message; }

if (!raw) {
  t.test('raw SYN probe', { skip: `needs a raw socket: ${why}` }, async () => {});
} else {
  const p = raw;
  t.teardown(() => p.close());
  t.test('raw SYN probe: a listener answers, the handshake never completes; a closed port is refused', async (t) => {
    const s = await server();
    const up = await p.probe(LO, s.port, 500);
    t.equal(up.ok, true, `answered (${up.latencyMs.toFixed(2)} ms)`);
    t.equal(up.reason, null);
    t.ok(up.latencyMs >= 0 && up.latencyMs < 500);
    const many = await Promise.all(Array.from({ length: 20 }, () => p.probe(LO, s.port, 1000)));
    t.ok(many.every((r) => r.ok), '20 concurrent probes, each matched to its own answer');
    await new Promise((r) => setTimeout(r, 50));
    t.equal(s.accepted(), 0, 'the server accepted no connection: SYN, SYN-ACK, RST only');
    await s.close();
    const down = await p.probe(LO, await closedPort(), 500);
    t.equal(down.ok, false);
    t.equal(down.reason, 'connection refused (RST)');
  });
  t.test('openProber picks the raw probe here', async (t) => {
    const o = openProber();
    t.equal(o.prober.kind, 'syn');
    t.equal(o.fallbackWhy, null);
    o.prober.close();
  });
}

t.test('connect fallback: open and closed ports', async (t) => {
  const c = new ConnectProber();
  const s = await server();
  const up = await c.probe(LO, s.port, 500);
  t.equal(up.ok, true);
  await s.close();
  const down = await c.probe(LO, await closedPort(), 500);
  t.equal(down.ok, false);
  t.match(down.reason, /connection refused/);
  c.close();
});

// The health probes that go through the host's own TCP stack: `tcp` (a connect) and `http` (a
// GET, its status and optionally a string in its body). Each resolves a ProbeResult and never
// rejects; a probe that has not answered within its timeout is abandoned and reported as a
// failure with the timeout as its latency. The raw-SYN probe (`syn`) lives in syn-probe.ts.
//
// Probes leave from this host's own address towards the backend's real address (not a VIP), so
// in nat mode the host needs a route to the backends' subnet (see the README, "Health checks").

import * as net from 'node:net';
import * as http from 'node:http';
import type { ProbeResult } from './types';
import { type HealthCheck, httpCheckDefaults } from '../config/health';

export interface ProbeTarget { ip: string; port: number }

/** A probe function: one check of one backend. The manager takes a map of these by check type. */
export type Probe = (target: ProbeTarget, check: HealthCheck) => Promise<ProbeResult>;

const BODY_LIMIT = 64 * 1024;

function elapsed(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function errText(e: NodeJS.ErrnoException): string {
  const names: Record<string, string> = {
    ECONNREFUSED: 'connection refused', EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable',
    ECONNRESET: 'connection reset', EPIPE: 'connection reset', ETIMEDOUT: 'timed out',
  };
  return (e.code && names[e.code]) ?? e.code ?? e.message;
}

/** `tcp`: the backend completes a TCP handshake on the port. The connection is then reset (no TIME_WAIT here). */
export const tcpProbe: Probe = (target, check) => new Promise((resolve) => {
  const t0 = process.hrtime.bigint();
  let done = false;
  const s = net.connect({ host: target.ip, port: target.port });
  const finish = (r: ProbeResult) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (s.readyState === 'open') s.resetAndDestroy(); else s.destroy();
    resolve(r);
  };
  const timer = setTimeout(() => finish({ ok: false, latencyMs: check.timeoutMs, reason: `timeout after ${check.timeoutMs} ms` }), check.timeoutMs);
  s.once('connect', () => finish({ ok: true, latencyMs: elapsed(t0), reason: null }));
  s.once('error', (e: NodeJS.ErrnoException) => finish({ ok: false, latencyMs: elapsed(t0), reason: errText(e) }));
});

/** `http`: GET path; the status must be one of expect_status (default 2xx or 3xx) and the body must contain `body` if set. */
export const httpProbe: Probe = (target, check) => new Promise((resolve) => {
  const h = check.http ?? httpCheckDefaults();
  const t0 = process.hrtime.bigint();
  let done = false;
  const finish = (r: ProbeResult) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    req.destroy();
    resolve(r);
  };
  const req = http.request({
    host: target.ip, port: target.port, path: h.path, method: 'GET', agent: false,
    headers: { host: h.host ?? target.ip, 'user-agent': 'vipgate-health', connection: 'close' },
  }, (res) => {
    const status = res.statusCode ?? 0;
    if (!h.status.some(([lo, hi]) => status >= lo && status <= hi)) {
      finish({ ok: false, latencyMs: elapsed(t0), reason: `status ${status}` });
      return;
    }
    if (h.body === null) { finish({ ok: true, latencyMs: elapsed(t0), reason: null }); return; }
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      body += d;
      if (body.includes(h.body!)) finish({ ok: true, latencyMs: elapsed(t0), reason: null });
      else if (body.length > BODY_LIMIT) finish({ ok: false, latencyMs: elapsed(t0), reason: `body does not contain ${JSON.stringify(h.body)} (first ${BODY_LIMIT} bytes)` });
    });
    res.on('end', () => finish({ ok: false, latencyMs: elapsed(t0), reason: `body does not contain ${JSON.stringify(h.body)}` }));
    res.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, latencyMs: elapsed(t0), reason: errText(e) }));
  });
  const timer = setTimeout(() => finish({ ok: false, latencyMs: check.timeoutMs, reason: `timeout after ${check.timeoutMs} ms` }), check.timeoutMs);
  req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, latencyMs: elapsed(t0), reason: errText(e) }));
  req.end();
});

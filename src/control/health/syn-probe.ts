// The raw SYN probe (issue 8 item 1, type `syn`), as a port scanner's half-open scan: vipgate
// sends one TCP SYN to backend:port from a raw socket and waits for the answer. A SYN-ACK means
// a listener is there (up); an RST means the port is closed (down: "connection refused"); silence
// until the timeout means down ("timeout"). After a SYN-ACK vipgate sends the RST that aborts the
// half-open connection; the host's kernel sends one too, since no socket of its own owns the
// port — either is enough, two are harmless (the second finds no connection). No handshake
// completes, so the backend's application never sees an accept(): the probe costs it one SYN
// queue entry for a round trip, and works the same in dsr and nat.
//
// Source address: the one this host's kernel would use to reach the backend (its route's
// source, found by connecting a UDP socket, which sends nothing). Backends answer it because it
// is an ordinary address of a host on their network: in dsr it is this host's address on the
// shared subnet; in nat the backends' reply goes to their default gateway, which is vipgate's
// MAC, and vipgate's capture filter and kernel rule leave traffic to the host's own addresses to
// the kernel, so the answer reaches the raw socket. That needs the host to have a route to the
// backends (in nat: `ip route add <backend subnet> dev <nic>`); without one, probes fail with
// "no route", which the README says how to fix. The source port is random in 32768-60999 (the
// kernel's ephemeral range), the sequence number random, and an answer counts only if it
// acknowledges that sequence number, so stray and spoofed segments are ignored.
//
// ConnectProber is the fallback when raw sockets are unavailable (no raw-socket addon, or no
// CAP_NET_RAW): the health checker's `tcp` probe, a connect closed with an RST as it completes.

import * as dgram from 'node:dgram';
import * as crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ProbeResult } from './types';
import { tcpProbe } from './probes';
import type { HealthCheck } from '../config/health';
import { VipgateError } from '../errors';
import { formatIpv4, parseIpv4 } from '../../wire/addr';
import { u16, u32, setU16, setU32 } from '../../wire/bytes';
import { TCP_SPORT, TCP_DPORT, TCP_SEQ, TCP_ACK, TCP_DOFF, TCP_FLAGS, TCP_WINDOW, TCP_CSUM, TCP_URG, TCP_SYN, TCP_RST, TCP_ACKF, TCPOPT_MSS } from '../../wire/tcp';
import { IP_PROTO, IP_SRC, IPPROTO_TCP } from '../../wire/ipv4';
import { sum16, finish, pseudoHeaderSum } from '../../wire/checksum';

/** Probes a backend's TCP port once. */
export interface Prober {
  /** 'syn': the raw SYN probe; 'connect': a TCP connect (the fallback). */
  readonly kind: 'syn' | 'connect';
  /** Resolves (never rejects) within about timeoutMs. `ip` is an IPv4 address as a number. */
  probe(ip: number, port: number, timeoutMs: number): Promise<ProbeResult>;
  close(): void;
}

interface RawSocket {
  on(ev: 'message', cb: (buf: Buffer, source: string) => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  send(buf: Buffer, off: number, len: number, addr: string, cb: (err: Error | null, bytes: number) => void): void;
  close(): void;
}
interface RawModule {
  createSocket(o: { protocol: number; addressFamily?: number }): RawSocket;
  Protocol: { TCP: number };
  AddressFamily: { IPv4: number };
}

const EPHEMERAL_LO = 32768, EPHEMERAL_SPAN = 61000 - 32768;
/** MSS the probe SYN offers (a SYN without one is unusual enough for some middleboxes to drop). */
const PROBE_MSS = 1460;
const PROBE_LEN = 24; // 20-byte header + the MSS option

interface Pending {
  ip: number;
  port: number;
  sport: number;
  seq: number;
  src: number;
  t0: number;
  timer: NodeJS.Timeout;
  done: (r: ProbeResult) => void;
}

const fail = (t0: number, reason: string): ProbeResult => ({ ok: false, latencyMs: performance.now() - t0, reason });

/** The address this host's kernel uses to reach ip (the route's source), or an error text. */
function sourceFor(ip: string, port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.on('error', (e: NodeJS.ErrnoException) => { s.close(); resolve(e.code === 'ENETUNREACH' ? `no route from this host to ${ip}` : e.message); });
    s.connect(port, ip, () => {
      const a = s.address().address;
      s.close();
      const n = parseIpv4(a);
      resolve(n === null ? `no IPv4 source address toward ${ip}` : n);
    });
  });
}

/** How long a backend's route source is reused before it is looked up again (routes rarely change). */
const SOURCE_TTL_MS = 10_000;

export class SynProber implements Prober {
  readonly kind = 'syn' as const;
  private readonly sock: RawSocket;
  private readonly sources = new Map<number, { src: number; at: number }>();
  /** Outstanding probes by "ip:port:sport" of the answer we expect. */
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  private constructor(sock: RawSocket) {
    this.sock = sock;
    sock.on('message', (buf) => this.onMessage(buf));
    sock.on('error', () => { /* a receive error ends in probe timeouts, reported per probe */ });
    // Reading never pauses: a paused raw socket keeps queueing every TCP segment the host
    // receives until its buffer is full, and then drops new ones, a probe's answer among them.
    // What it reads is the host's own TCP only (VIP traffic is dropped before the kernel's IP
    // stack by vipgate's ingress rule): the API, health checks, an SSH session.
  }

  /** Opens the raw socket; throws VipgateError when raw sockets are unavailable (the caller falls back). */
  static open(): SynProber {
    let raw: RawModule;
    try {
      raw = require('raw-socket') as RawModule;
    } catch (e) {
      throw new VipgateError('ESYNPROBE_UNAVAILABLE', `the raw-socket addon is not available (${(e as Error).message.split('\n')[0]}): npm rebuild raw-socket (needs g++ and make)`);
    }
    try {
      return new SynProber(raw.createSocket({ protocol: raw.Protocol.TCP, addressFamily: raw.AddressFamily.IPv4 }));
    } catch (e) {
      throw new VipgateError('ESYNPROBE_UNAVAILABLE', `cannot open a raw TCP socket (${(e as Error).message}): the syn probe needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on node)`);
    }
  }

  probe(ip: number, port: number, timeoutMs: number): Promise<ProbeResult> {
    const t0 = performance.now();
    if (this.closed) return Promise.resolve(fail(t0, 'prober closed'));
    const ipText = formatIpv4(ip);
    return new Promise((resolve) => {
      void this.source(ip, ipText, port).then((src) => {
        if (typeof src === 'string') { resolve(fail(t0, src)); return; }
        let sport = 0, key = '';
        do { sport = EPHEMERAL_LO + crypto.randomInt(EPHEMERAL_SPAN); key = `${ip >>> 0}:${port}:${sport}`; } while (this.pending.has(key));
        const seq = crypto.randomBytes(4).readUInt32BE(0);
        const left = Math.max(0, timeoutMs - (performance.now() - t0));
        const p: Pending = {
          ip, port, sport, seq, src, t0,
          timer: setTimeout(() => this.finish(key, fail(t0, `timeout after ${timeoutMs} ms`)), left),
          done: resolve,
        };
        this.pending.set(key, p);
        this.sock.send(segment(src, ip, sport, port, seq, 0, TCP_SYN), 0, PROBE_LEN, ipText, (err) => {
          if (err) this.finish(key, fail(t0, `send failed: ${err.message}`));
        });
      });
    });
  }

  /** The route source toward ip, cached for SOURCE_TTL_MS (a failure is not cached: the route may appear). */
  private async source(ip: number, ipText: string, port: number): Promise<number | string> {
    const now = performance.now();
    const c = this.sources.get(ip);
    if (c && now - c.at < SOURCE_TTL_MS) return c.src;
    const src = await sourceFor(ipText, port);
    if (typeof src === 'number') this.sources.set(ip, { src, at: now });
    else this.sources.delete(ip);
    return src;
  }

  private finish(key: string, r: ProbeResult): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    p.done(r);
  }

  /** Every TCP segment the host receives comes here (IPv4 header included); only answers to a probe count. */
  private onMessage(buf: Buffer): void {
    if (buf.length < 20 || buf[0]! >>> 4 !== 4 || buf[IP_PROTO] !== IPPROTO_TCP) return;
    const l4 = (buf[0]! & 0x0f) << 2;
    if (buf.length < l4 + 20) return;
    const from = u32(buf, IP_SRC);
    const key = `${from}:${u16(buf, l4 + TCP_SPORT)}:${u16(buf, l4 + TCP_DPORT)}`;
    const p = this.pending.get(key);
    if (!p) return;
    const flags = buf[l4 + TCP_FLAGS]!;
    if ((flags & TCP_ACKF) === 0 || u32(buf, l4 + TCP_ACK) !== ((p.seq + 1) >>> 0)) return; // not an answer to our SYN
    if (flags & TCP_RST) { this.finish(key, fail(p.t0, 'connection refused (RST)')); return; }
    if ((flags & TCP_SYN) === 0) return;
    // Up. Abort the half-open connection at once, so the backend frees its SYN queue entry.
    const rst = segment(p.src, p.ip, p.sport, p.port, (p.seq + 1) >>> 0, 0, TCP_RST);
    this.sock.send(rst, 0, TCP_HEADER_ONLY, formatIpv4(p.ip), () => { /* the kernel's own RST covers a lost one */ });
    this.finish(key, { ok: true, latencyMs: performance.now() - p.t0, reason: null });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const key of [...this.pending.keys()]) this.finish(key, fail(performance.now(), 'prober closed'));
    this.sock.close();
  }
}

const TCP_HEADER_ONLY = 20;

/** A TCP segment from src:sport to dst:dport (a SYN carries the MSS option), checksum filled in. */
export function segment(src: number, dst: number, sport: number, dport: number, seq: number, ack: number, flags: number): Buffer {
  const syn = (flags & TCP_SYN) !== 0;
  const len = syn ? PROBE_LEN : TCP_HEADER_ONLY;
  const b = Buffer.alloc(len);
  setU16(b, TCP_SPORT, sport);
  setU16(b, TCP_DPORT, dport);
  setU32(b, TCP_SEQ, seq);
  setU32(b, TCP_ACK, ack);
  b[TCP_DOFF] = (len >>> 2) << 4;
  b[TCP_FLAGS] = flags;
  setU16(b, TCP_WINDOW, syn ? 1024 : 0);
  setU16(b, TCP_URG, 0);
  if (syn) { b[20] = TCPOPT_MSS; b[21] = 4; setU16(b, 22, PROBE_MSS); }
  setU16(b, TCP_CSUM, finish(sum16(b, 0, len, pseudoHeaderSum(src, dst, IPPROTO_TCP, len))));
  return b;
}

/** The fallback probe: the health checker's `tcp` probe (a connect, ended with an RST once it completes). */
export class ConnectProber implements Prober {
  readonly kind = 'connect' as const;
  probe(ip: number, port: number, timeoutMs: number): Promise<ProbeResult> {
    const check: HealthCheck = { type: 'tcp', port, intervalMs: timeoutMs + 1, timeoutMs, fastIntervalMs: timeoutMs + 1, rise: 1, fall: 1, http: null };
    return tcpProbe({ ip: formatIpv4(ip), port }, check);
  }
  close(): void { /* each probe ends its own socket */ }
}

/** The raw SYN prober if this process may open raw sockets, else the connect fallback (and why). */
export function openProber(): { prober: Prober; fallbackWhy: string | null } {
  try {
    return { prober: SynProber.open(), fallbackWhy: null };
  } catch (e) {
    return { prober: new ConnectProber(), fallbackWhy: (e as Error).message };
  }
}

// A real Controller behind the real API server, without a NIC: the config is YAML in a temp
// directory (so reload() reads it again), the state file lives beside it, the clock is a
// variable the test moves, and frames go straight into the dataplane. For test/api.test.ts and
// test/api-fuzz.test.ts.
//
//   const h = await startHarness();
//   const r = await h.req('POST', '/v1/backends', { name: 'a1', ip: '10.0.2.1', serves: '10.0.0.200:80' });
//   h.syn('192.0.2.7:40000', '10.0.0.200', 80)   // -> 'a1' (the backend the new flow went to) or a drop reason
//   const before = h.snapshot(); ...; t.equal(h.snapshot(), before)   // "nothing changed"

import * as fs from 'node:fs';
import { request as rawRequest, type Res } from './http';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, type Config } from '../../src/control/config';
import { Controller } from '../../src/control/controller';
import { startApiServer, type ApiServer } from '../../src/control/api';
import { createMetrics } from '../../src/obs/metrics';
import { buildDataplane, type Built } from '../../src/app/replay';
import { reasonName } from './dp';
import { tcp, arp } from './frames';
import { TCP_SYN, TCP_ACKF, TCP_FIN } from '../../src/wire/tcp';
import { ARP_OP_REPLY } from '../../src/wire/arp';
import { parseIpv4, formatMac, parseMac } from '../../src/wire/addr';
import { parseEthernet } from '../../src/wire/ethernet';
import { VERDICT_TX } from '../../src/dataplane/dataplane';

export const OUR_MAC = '02:00:5e:00:00:01';
export const CLIENT_MAC = '02:aa:00:00:00:07';
export const WEB1_MAC = '02:00:00:00:01:21';
export const WEB2_MAC = '02:00:00:00:01:22';
/** Flow timeouts of the default config, ms (short, so tests expire flows by moving the clock). */
export const TIMEOUTS = { halfOpen: 10_000, established: 60_000, closing: 5_000 } as const;
/** The clock's start (ms): any fixed value; not 0, so "never seen" and "now" differ. */
export const T0 = 1_700_000_000_000;

/**
 * The default config: two VIPs, two config backends with MACs, an IP-mode service and a
 * port-mode one with a standby. `extra` is appended (more top-level keys).
 */
export function defaultYaml(o: { mode?: 'dsr' | 'nat'; vips?: string[]; backends?: string[]; services?: string[]; extra?: string } = {}): string {
  const vips = o.vips ?? ['10.0.0.100', '10.0.0.101'];
  const backends = o.backends ?? [
    `{ name: web1, ip: 10.0.1.21, mac: "${WEB1_MAC}" }`,
    `{ name: web2, ip: 10.0.1.22, mac: "${WEB2_MAC}" }`,
  ];
  const services = o.services ?? [
    '{ vip: 10.0.0.100, backend: web1 }',
    '{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }',
  ];
  return [
    `mac: "${OUR_MAC}"`,
    `mode: ${o.mode ?? 'dsr'}`,
    ...(o.mode === 'nat' ? ['nat_gateway: 10.0.1.1'] : []),
    `vips: [${vips.map((v) => `"${v}"`).join(', ')}]`,
    'backends:',
    ...backends.map((b) => `  - ${b}`),
    'services:',
    ...services.map((s) => `  - ${s}`),
    'flows:',
    '  capacity: 16384',
    `  half_open_timeout: ${TIMEOUTS.halfOpen}ms`,
    `  established_timeout: ${TIMEOUTS.established}ms`,
    `  closing_timeout: ${TIMEOUTS.closing}ms`,
    o.extra ?? '',
    '',
  ].join('\n');
}

export interface HarnessOptions {
  /** The config text (default: defaultYaml()). */
  yaml?: string;
  /** Bearer token the API requires (default none: loopback without a token). */
  token?: string | null;
  /** false: no state file (default: one in the temp directory). */
  stateFile?: boolean;
  /** Write this as the state file before the controller starts. */
  initialState?: string;
}

export type { Res };

/** What happened to one client segment pushed through the dataplane. */
export interface SegResult {
  /** 'tx' or the drop reason. */
  verdict: string;
  /** The backend of the flow (from the flow table), or null when there is no flow. */
  backend: string | null;
  /** Destination MAC of the frame sent (null when dropped). */
  dstMac: string | null;
}

export interface Harness {
  dir: string;
  configFile: string;
  stateFile: string | null;
  token: string | null;
  config: Config;
  built: Built;
  controller: Controller;
  server: ApiServer;
  logs: Array<{ level: string; msg: string }>;
  /** The clock (ms) the controller and the packet path see. */
  now: number;
  advance(ms: number): void;
  /** HTTP to the API. An object body is sent as JSON; a string or Buffer as is. The token is sent unless `authorization` is given (null: send none). */
  req(method: string, p: string, body?: unknown, headers?: Record<string, string | number | null>): Promise<Res>;
  /** A SYN from client ("ip:port", or "ip" for port 40000) to vip:port; the flow's backend name, or the drop reason. */
  syn(client: string, vip: string, port: number): string;
  /** A non-SYN segment (ACK, or FIN|ACK with fin) of a flow. */
  seg(client: string, vip: string, port: number, fin?: boolean): SegResult;
  /** An ARP reply from a host (teaches the neighbour table its MAC). */
  arpFrom(ip: string, mac: string): string;
  /** Expire idle flows at the current clock: a full dataplane sweep, then the controller's tick. */
  sweepAndTick(): void;
  /** JSON of backends/services/vips/generation plus the state file bytes: equal = nothing changed. */
  snapshot(): string;
  /** The state file's text ('<absent>' / '<error CODE>' when it cannot be read). */
  stateText(): string;
  writeConfig(text: string): void;
  /** A second controller built from the same config text (default: the file's) and state file, on a fresh dataplane. */
  fresh(yaml?: string): Controller;
  close(): Promise<void>;
}

function splitClient(client: string): { ip: string; port: number } {
  const i = client.indexOf(':');
  return i < 0 ? { ip: client, port: 40000 } : { ip: client.slice(0, i), port: Number(client.slice(i + 1)) };
}

/** Readable file content or a marker, so a snapshot never throws. */
function readMarker(file: string | null): string {
  if (file === null) return '<no state file>';
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? '<absent>' : `<error ${code}>`;
  }
}

export function request(address: string, method: string, p: string, body?: unknown, headers: Record<string, string | number | null> = {}): Promise<Res> {
  let data: Buffer | undefined;
  const h: Record<string, string | number> = {};
  if (body !== undefined) {
    if (typeof body === 'string') data = Buffer.from(body, 'utf8');
    else if (Buffer.isBuffer(body)) data = body;
    else data = Buffer.from(JSON.stringify(body), 'utf8');
    h['content-type'] = 'application/json';
    h['content-length'] = data.length;
  }
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete h[k.toLowerCase()];
    else h[k.toLowerCase()] = v;
  }
  return rawRequest(address, method, p, { headers: h, ...(data === undefined ? {} : { body: data }) });
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-api-'));
  const configFile = path.join(dir, 'vipgate.yaml');
  const yaml = o.yaml ?? defaultYaml();
  fs.writeFileSync(configFile, yaml);
  const stateFile = o.stateFile === false ? null : path.join(dir, 'state', 'state.json');
  if (stateFile) fs.mkdirSync(path.dirname(stateFile), { recursive: true });
  if (stateFile && o.initialState !== undefined) fs.writeFileSync(stateFile, o.initialState);
  const config = parseConfig(yaml, configFile);
  const built = buildDataplane(config, { seed: 7 });
  const logs: Array<{ level: string; msg: string }> = [];
  const token = o.token ?? null;

  let server: ApiServer | null = null;
  const h: Harness = {
    dir, configFile, stateFile, token, config, built, logs,
    controller: null as unknown as Controller,
    server: null as unknown as ApiServer,
    now: T0,
    advance(ms) { h.now += ms; },
    req(method, p, body, headers = {}) {
      const hd = { ...headers };
      if (token !== null && !Object.keys(hd).some((k) => k.toLowerCase() === 'authorization')) hd['authorization'] = `Bearer ${token}`;
      return request(h.server.address, method, p, body, hd);
    },
    syn(client, vip, port) {
      const c = splitClient(client);
      const f = tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: c.ip, dst: vip, srcPort: c.port, dstPort: port, flags: TCP_SYN, seq: 1000 });
      const v = built.dataplane.process(f, 0, f.length, h.now);
      if (v !== VERDICT_TX) return reasonName(built.dataplane.lastDrop);
      return flowBackend(h, c.ip, c.port, vip, port) ?? '(no flow)';
    },
    seg(client, vip, port, fin = false) {
      const c = splitClient(client);
      const f = tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: c.ip, dst: vip, srcPort: c.port, dstPort: port, flags: TCP_ACKF | (fin ? TCP_FIN : 0), seq: 1001, ack: 5001, payload: 'GET / HTTP/1.1\r\n\r\n' });
      const v = built.dataplane.process(f, 0, f.length, h.now);
      const dstMac = v === VERDICT_TX ? parseEthernet(f)!.dst : null;
      return { verdict: v === VERDICT_TX ? 'tx' : reasonName(built.dataplane.lastDrop), backend: flowBackend(h, c.ip, c.port, vip, port), dstMac };
    },
    arpFrom(ip, mac) {
      const f = arp({ src: mac, dst: OUR_MAC, oper: ARP_OP_REPLY, senderIp: ip, targetIp: '10.0.1.1', targetMac: OUR_MAC });
      built.dataplane.process(f, 0, f.length, h.now);
      return reasonName(built.dataplane.lastDrop);
    },
    sweepAndTick() {
      built.dataplane.sweep(h.now, built.state.flowSlots);
      h.controller.tick(h.now);
    },
    snapshot() {
      const c = h.controller;
      return JSON.stringify({ backends: c.backends(), services: c.services(), vips: c.vips(), generation: c.status().generation, state: readMarker(stateFile) });
    },
    stateText() { return readMarker(stateFile); },
    writeConfig(text) { fs.writeFileSync(configFile, text); },
    fresh(text) {
      const cfg = parseConfig(text ?? fs.readFileSync(configFile, 'utf8'), configFile);
      const b = buildDataplane(cfg, { seed: 7 });
      return new Controller({ config: cfg, port: b.port, mac: cfg.mac!, stateFile, clock: () => h.now });
    },
    async close() {
      await server?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    h.controller = new Controller({
      config, port: built.port, mac: config.mac!, stateFile, version: '0.0.0-test', iface: null,
      clock: () => h.now,
      log: (level, msg) => { logs.push({ level, msg }); },
    });
    const metrics = createMetrics({ counters: built.state.counters, flowCapacity: built.state.flowCapacity, api: h.controller }, { processMetrics: false });
    server = await startApiServer({ listen: '127.0.0.1:0', token, api: h.controller, metrics: () => metrics.text() });
    h.server = server;
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return h;
}

/** The backend name of the flow client -> vip:port, or null when there is none. */
function flowBackend(h: Harness, clientIp: string, clientPort: number, vip: string, port: number): string | null {
  const fl = h.built.dataplane.flows;
  const s = fl.lookup(parseIpv4(clientIp)! | 0, parseIpv4(vip)! | 0, ((clientPort << 16) | port) | 0);
  if (s < 0) return null;
  return h.built.dataplane.currentTables.backendNames[fl.backend(s)] || `(slot ${fl.backend(s)})`;
}

/** A MAC for test backend n: 02:00:00:00:hh:ll. */
export function macFor(n: number): string {
  return formatMac(parseMac(`02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`)!);
}

/** Backend names of a GET /v1/backends answer. */
export function names(backends: Array<{ name: string }>): string[] {
  return backends.map((b) => b.name).sort();
}

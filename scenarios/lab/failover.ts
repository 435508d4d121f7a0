// Failing and restoring the lab's backends, for the failover tests and benchmark (issue 8):
// SIGKILL a backend's HTTP server (by its PID, found among the backend namespace's processes),
// start it again, silence the whole backend (a black hole) and restore it. And, in nat, the route the vipgate host needs so
// that control's own probes (the SYN-time check, health checks) reach the backends' subnet.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { LAB_HTTP_PORT, type Lab } from './lab';
import type { PacedResult } from './load';

/** PIDs of the lab's HTTP server in backend namespace i (0-based): normally exactly one. */
export function serverPids(lab: Lab, i: number): number[] {
  const ns = lab.ns.backends[i]!;
  const r = lab.exec(lab.ns.switch, ['ip', 'netns', 'pids', ns]);
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((pid) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('http-server.js'); } catch { return false; }
  });
}

/** SIGKILL backend i's server (the process dies; its host keeps answering: closed port, RST). Returns the PIDs killed. */
export function killServer(lab: Lab, i: number): number[] {
  const pids = serverPids(lab, i);
  if (pids.length === 0) throw new Error(`no HTTP server runs in ${lab.ns.backends[i]}`);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  return pids;
}

/** Start backend i's server again (tracked by the lab) and wait until it listens. */
export function restartServer(lab: Lab, i: number): Promise<void> {
  const serverJs = path.join(__dirname, 'http-server.js');
  const name = lab.backendNames[i]!;
  const child = lab.spawn(lab.ns.backends[i]!, [process.execPath, serverJs, '--name', name, '--port', String(LAB_HTTP_PORT), '--exit-on-stdin-eof']);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no "listening" within 10 s`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening\n')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited (${code})`)); });
  });
}

/**
 * Make backend i silent (a black hole: it drops everything, in and out, as a host that froze or
 * lost its link would look from outside) or bring it back. An nftables table in the backend's
 * own namespace, rather than the link going down, so its addresses and routes (the nat default
 * route, b1's policy table) are still there when it comes back.
 */
export function setBackendSilent(lab: Lab, i: number, silent: boolean): void {
  const ns = lab.ns.backends[i]!;
  const script = silent
    ? 'table inet vipgate_lab_silence {\n chain in { type filter hook input priority -300; policy drop; }\n chain out { type filter hook output priority -300; policy drop; }\n}\n'
    : 'delete table inet vipgate_lab_silence\n';
  const r = lab.exec(ns, ['nft', '-f', '-'], { input: script });
  if (r.code !== 0) throw new Error(`nft in ${ns} (${silent ? 'silence' : 'restore'}): ${r.stderr.trim()}`);
}

/**
 * nat: give the vipgate host's kernel an on-link route to the backends' subnet, so probes sent
 * from its own address (10.77.0.2) reach them; their answers come back through their gateway
 * (vipgate's MAC) and, being for a host address, go to the kernel. dsr needs nothing.
 */
export function routeVipgateHostToBackends(lab: Lab): void {
  if (lab.mode !== 'nat') return;
  const net = lab.addr.backends[0]!.replace(/\.\d+$/, '.0/24');
  const r = lab.exec(lab.ns.vipgate, ['ip', 'route', 'replace', net, 'dev', lab.vipgateIf]);
  if (r.code !== 0) throw new Error(`ip route replace ${net} in ${lab.ns.vipgate}: ${r.stderr.trim()}`);
}

/**
 * Start a paced load (scenarios/lab/load.ts --rate): `rate` fresh connections per second for
 * `durationMs` from namespace ns; resolves with every request's record once the run is over.
 */
export function startPacedLoad(lab: Lab, ns: string, url: string, o: { rate: number; durationMs: number; timeoutMs: number }): Promise<PacedResult> {
  const loadJs = path.join(__dirname, 'load.js');
  const child = lab.spawn(ns, [process.execPath, loadJs, '--url', url, '--rate', String(o.rate), '--duration-ms', String(o.durationMs),
    '--timeout-ms', String(o.timeoutMs), '--exit-on-stdin-eof']);
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const limit = o.durationMs + o.timeoutMs + 15_000;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`paced load from ${ns}: no result within ${limit} ms`)); }, limit);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) { reject(new Error(`paced load from ${ns} exited ${code}: ${err.trim()}`)); return; }
      try { resolve(JSON.parse(out) as PacedResult); } catch { reject(new Error(`paced load from ${ns}: unreadable result ${out.slice(0, 200)}`)); }
    });
  });
}

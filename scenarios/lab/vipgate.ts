// Running vipgate itself in a lab: the lab's config, and `vipgate run` started inside the
// vipgate host's namespace with a status file, stopped by PID with SIGTERM.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab } from './lab';
import type { CounterSnapshot } from '../../src/dataplane/counters';

const repo = path.resolve(__dirname, '..', '..', '..');
export const VIPGATE_BIN = path.join(repo, 'bin', 'vipgate.js');

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
  dir: string;
  statusFile: string;
  /** Everything vipgate wrote to stderr so far. */
  log(): string;
  /** The last status written (counters), or null. */
  status(): (CounterSnapshot & { time: number }) | null;
  /** SIGTERM by PID, wait for exit; returns the exit code and the final status. */
  stop(): Promise<{ code: number | null; status: (CounterSnapshot & { time: number }) | null; log: string }>;
}

export async function startVipgate(lab: Lab, yaml: string, args: string[] = []): Promise<VipgateProc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vipgate-${lab.prefix}-`));
  const cfg = path.join(dir, 'vipgate.yaml');
  const statusFile = path.join(dir, 'status.json');
  fs.writeFileSync(cfg, yaml);
  const proc = lab.spawn('vg', [process.execPath, VIPGATE_BIN, 'run', '--config', cfg, '--status-file', statusFile, ...args]);
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => { exited = code; r(code); }));
  const deadline = Date.now() + 15_000;
  while (!/attached to /.test(err)) {
    if (exited !== undefined) throw new Error(`vipgate exited (${exited}) before attaching:\n${err}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`vipgate did not attach within 15 s:\n${err}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Give the first gratuitous ARPs and backend resolutions a moment.
  await new Promise((r) => setTimeout(r, 400));
  const readStatus = () => { try { return JSON.parse(fs.readFileSync(statusFile, 'utf8')); } catch { return null; } };
  return {
    proc, dir, statusFile,
    log: () => err,
    status: readStatus,
    async stop() {
      if (exited === undefined && proc.pid) { try { process.kill(proc.pid, 'SIGTERM'); } catch { /* gone */ } }
      const t = setTimeout(() => { if (exited === undefined && proc.pid) try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
      const code = await exit;
      clearTimeout(t);
      const status = readStatus();
      fs.rmSync(dir, { recursive: true, force: true });
      return { code, status, log: err };
    },
  };
}

// contrib/vipgate.service (issue 12 item 7): `systemd-analyze verify` accepts it (when systemd's
// tools are installed), and, parsed here, it grants exactly the capabilities vipgate checks for,
// reloads with SIGHUP, restarts after a crash but not after exit status 2 (a mistake to fix),
// gives vipgate the directories it uses (the instance locks' /run/vipgate, the state file's
// /var/lib/vipgate), and its ExecStart is a command line `vipgate run` accepts. And, as root
// in a namespace lab, vipgate runs as the unit would run it: unprivileged, with only those two
// capabilities.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './helpers/paths.js';
import { LOCK_DIR } from '../src/control/instance-lock.js';

const unitFile = path.join(repoRoot, 'contrib', 'vipgate.service');
const text = fs.readFileSync(unitFile, 'utf8');

/** section -> key -> values (a key may repeat). Comments and blank lines dropped; no continuations used. */
function parseUnit(s: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let sec: Map<string, string[]> | null = null;
  for (const raw of s.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) { sec = new Map(); out.set(m[1]!, sec); continue; }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !sec) throw new Error(`${unitFile}: cannot parse line: ${raw}`);
    sec.set(kv[1]!, [...(sec.get(kv[1]!) ?? []), kv[2]!]);
  }
  return out;
}

const unit = parseUnit(text);
const svc = unit.get('Service')!;
const one = (k: string) => { const v = svc.get(k); return v?.length === 1 ? v[0]! : undefined; };

t.test('systemd-analyze verify accepts the unit', async (t) => {
  const have = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;
  if (!have) { t.plan(0, 'systemd-analyze (systemd) is not installed here; the unit is still checked below'); return; }
  if (!fs.existsSync('/usr/bin/node')) { t.plan(0, 'the unit runs /usr/bin/node, which this machine does not have, so verify would refuse ExecStart'); return; }
  const r = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, `exit 0 ${r.stderr}`);
  t.equal(r.stderr.trim(), '', 'no warnings');
});

t.test('the unit gives vipgate what it needs, and no more', async (t) => {
  t.ok(unit.has('Unit') && unit.has('Service') && unit.has('Install'), 'Unit, Service and Install sections');
  t.equal(one('Type'), 'simple');
  const caps = (k: string) => new Set((one(k) ?? '').split(/\s+/).filter(Boolean));
  // src/link/host.ts missingCapabilities: the two it checks; CAP_SYS_NICE for the packet worker's
  // priority (src/app/workers.ts WORKER_NICE; without it vipgate warns and runs).
  t.same([...caps('AmbientCapabilities')].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_NICE'], 'ambient: CAP_NET_RAW, CAP_NET_ADMIN and CAP_SYS_NICE');
  t.same([...caps('CapabilityBoundingSet')].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_NICE'], 'bounding set: those three only');
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID', 'systemctl reload sends SIGHUP (vipgate reloads its config)');
  t.equal(one('Restart'), 'on-failure', 'restarted after a crash');
  t.equal(one('RestartPreventExitStatus'), '2', 'not after exit 2: a mistake a restart cannot fix (bad config, NIC taken)');
  t.equal(one('KillSignal'), 'SIGTERM', 'stopped with SIGTERM (vipgate removes its nftables table)');
  t.equal(`/run/${one('RuntimeDirectory')}`, LOCK_DIR, 'RuntimeDirectory is where the instance locks live');
  t.equal(one('RuntimeDirectoryPreserve'), 'yes', 'kept across stops: a lock file is never unlinked under a holder');
  t.equal(one('StateDirectory'), 'vipgate');
  t.match(svc.get('After')?.join(' ') ?? unit.get('Unit')!.get('After')!.join(' '), /network-online\.target/);
  t.equal(unit.get('Install')!.get('WantedBy')![0], 'multi-user.target');
});

t.test("ExecStart is a command line vipgate run accepts, with paths systemd provides", async (t) => {
  const argv = one('ExecStart')!.split(/\s+/);
  t.equal(argv[0], '/usr/bin/node');
  t.match(argv[1], /\/bin\/vipgate\.js$/);
  t.equal(argv[2], 'run');
  const flag = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined; };
  t.equal(flag('--config'), '/etc/vipgate/vipgate.yaml', `the config in ConfigurationDirectory (${one('ConfigurationDirectory')})`);
  t.match(flag('--state-file'), new RegExp(`^/var/lib/${one('StateDirectory')}/`), 'the state file in StateDirectory');
  t.match(flag('--status-file'), new RegExp(`^/run/${one('RuntimeDirectory')}/`), 'the status file in RuntimeDirectory');
  // The flags are vipgate's: run --help lists each one the unit uses.
  const help = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'vipgate.js'), 'run', '--help'], { encoding: 'utf8' });
  for (const f of argv.filter((a) => a.startsWith('--'))) t.match(help.stdout, f, `vipgate run takes ${f}`);
});

// What the unit sets up, without systemd: vipgate as an unprivileged user holding only the
// unit's ambient capabilities (setpriv does what DynamicUser= and AmbientCapabilities= do), with
// a lock file that user owns (what RuntimeDirectory= gives it), in a namespace lab.
t.test('as an unprivileged user with only the unit capabilities (ambient), vipgate runs, filters and forwards', async (t) => {
  const { canRunVipgateLab, labConfigYaml, VIPGATE_BIN } = await import('../scenarios/lab/vipgate.js');
  const { createLab, httpLoad } = await import('../scenarios/lab/lab.js');
  const { lockFile } = await import('../src/control/instance-lock.js');
  const can = canRunVipgateLab();
  const caps = unitCaps();
  if (!can.ok) { t.plan(0, can.why); return; }
  if (spawnSync('setpriv', ['--help'], { encoding: 'utf8' }).stdout.indexOf('--ambient-caps') < 0) { t.plan(0, 'setpriv with --ambient-caps (util-linux) is not installed'); return; }
  const lab = await createLab({ mode: 'dsr', clients: 1, backends: 2 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-unit-'));
  let lf: string | null = null;
  t.teardown(() => {
    lab.teardown();
    fs.rmSync(dir, { recursive: true, force: true });
    // Our own file for a namespace that no longer exists: nobody can be holding it.
    if (lf) fs.rmSync(lf, { force: true });
  });
  fs.chmodSync(dir, 0o777);
  const cfg = path.join(dir, 'vipgate.yaml');
  fs.writeFileSync(cfg, labConfigYaml(lab), { mode: 0o644 });
  const ino = Number(lab.exec('vg', ['stat', '-L', '-c', '%i', '/proc/self/ns/net']).stdout.trim());
  lf = lockFile('eth0', LOCK_DIR, ino);
  fs.mkdirSync(LOCK_DIR, { recursive: true });
  fs.writeFileSync(lf, '');
  fs.chownSync(lf, 65534, 65534);
  const capList = caps.map((c) => '+' + c.replace(/^CAP_/, '').toLowerCase()).join(',');
  const child = lab.spawn('vg', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=${capList}`, `--ambient-caps=${capList}`,
    process.execPath, VIPGATE_BIN, 'run', '--config', cfg, '--state-file', path.join(dir, 'state.json'), '--status-file', path.join(dir, 'status.json')],
    // A clean environment, as systemd gives.
    { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<string>((r) => child.once('exit', (c, sig) => r(`${c ?? sig}`)));
  const deadline = Date.now() + 20_000;
  while (!/"event":"api"/.test(err) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.equal(child.exitCode, null, `started as uid 65534 with ${caps.join(' and ')} only ${child.exitCode === null ? '' : err}`);
  t.match(lab.exec('vg', ['nft', 'list', 'table', 'netdev', 'vipgate_eth0']).stdout, /vipgate: VIP traffic/, 'its nft child installed the table with the ambient CAP_NET_ADMIN');
  const load = await httpLoad(lab, 'c1', lab.vipUrls[0]!, 100, { concurrency: 4, timeoutMs: 5000 });
  t.equal(load.failed, 0, `100 connections through it ${load.errors.join(', ')}`);
  if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
  await exited;
  // (Its exit status is not the thing to check here: the test runner's coverage hooks, which
  // it adds to every node it spawns, fail to write their file as uid 65534 at exit.)
  t.match(err, /"event":"stopped"/, 'SIGTERM: it stops cleanly');
  t.notMatch(lab.exec('vg', ['nft', 'list', 'tables']).stdout, /vipgate_eth0/, 'and removed its table');
});

function unitCaps(): string[] {
  return (one('AmbientCapabilities') ?? '').split(/\s+/).filter(Boolean);
}

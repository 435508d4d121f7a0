// contrib/vipgate.service (issue 12 item 7): `systemd-analyze verify` accepts it (when systemd's
// tools are installed), and, parsed here, it grants exactly the capabilities vipgate checks for,
// reloads with SIGHUP, restarts after a crash but not after exit status 2 (a mistake to fix),
// gives vipgate the directories it uses (the instance locks' /run/vipgate, the state file's
// /var/lib/vipgate), and its ExecStart is a command line `vipgate run` accepts.

import t from 'tap';
import * as fs from 'node:fs';
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
  // src/link/host.ts missingCapabilities: the two it checks.
  t.same([...caps('AmbientCapabilities')].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW'], 'ambient: CAP_NET_RAW and CAP_NET_ADMIN');
  t.same([...caps('CapabilityBoundingSet')].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW'], 'bounding set: those two only');
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

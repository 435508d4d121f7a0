// `vipgate run` start-up errors: each says what is wrong and what to do, exits 2, no stack
// trace, and nothing is opened or installed before the check that fails.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const repo = path.resolve(__dirname, '..', '..');
const bin = path.join(repo, 'bin', 'vipgate.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-run-errors-'));
fs.chmodSync(tmp, 0o755);
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cfg(name: string, yaml: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, yaml, { mode: 0o644 });
  return p;
}
function run(argv: string[], asNobody = false) {
  const cmd = asNobody ? 'setpriv' : process.execPath;
  const args = asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, ...argv] : [bin, ...argv];
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
}

const cases: Array<[string, string[], RegExp]> = [
  ['no such interface: the ones there are are listed', ['run', '--config', cfg('a.yaml', 'interface: vgnosuch0\nvips: [10.99.0.100]\n')], /no network interface named "vgnosuch0" here; interfaces on this host: .*lo/],
  ['not Ethernet', ['run', '--config', cfg('b.yaml', 'interface: lo\nvips: [10.99.0.100]\n')], /lo is not an Ethernet interface/],
  ['no interface at all', ['run', '--config', cfg('c.yaml', 'vips: [10.99.0.100]\n')], /no interface to attach to: add interface: eth0/],
  ['--interface overrides; still checked', ['run', '--config', cfg('d.yaml', 'vips: [10.99.0.100]\n'), '--interface', 'vgnosuch1'], /no network interface named "vgnosuch1"/],
  ['bad config', ['run', '--config', cfg('e.yaml', 'interface: lo\nvips: [10.99.0.300]\n')], /e\.yaml:2:\d+: vips\[0\]: "10\.99\.0\.300" is not an IPv4 address/],
  ['bad --stats-interval', ['run', '--config', cfg('f.yaml', 'vips: [10.99.0.100]\n'), '--stats-interval', 'soon'], /--stats-interval takes a duration/],
  ['missing --config', ['run'], /missing --config FILE/],
  // Every check type has its probe now (syn: the raw SYN prober): the run gets as far as the NIC.
  ['a syn health check is accepted', ['run', '--config', cfg('h.yaml', 'interface: lo\nvips: [10.99.0.100]\nhealth: { type: syn, port: 80 }\n')], /lo is not an Ethernet interface/],
];
for (const [desc, argv, re] of cases) {
  t.test(desc, async (t) => {
    const r = run(argv);
    t.equal(r.status, 2, 'exit 2');
    t.match(r.stderr, re);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
}

t.test('the libpcap binding did not build: run says so first, with the fix', async (t) => {
  // A preload that makes require('cap') fail as it does when npm skipped the addon; io: pcap,
  // the one backend that needs it (auto would use the native addon where it is built).
  const hook = path.join(tmp, 'no-cap.js');
  fs.writeFileSync(hook, "const M = require('module'); const o = M._resolveFilename; M._resolveFilename = function (r, ...a) { if (r === 'cap') { const e = new Error(\"Cannot find module 'cap'\"); e.code = 'MODULE_NOT_FOUND'; throw e; } return o.call(this, r, ...a); };\n");
  const r = spawnSync(process.execPath, ['-r', hook, bin, 'run', '--config', cfg('h.yaml', 'interface: vgnosuch0\nvips: [10.99.0.100]\nio: pcap\n')], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 2, 'exit 2');
  t.match(r.stderr, /the libpcap binding \(npm package "cap"\) is not available: Cannot find module 'cap'/);
  t.match(r.stderr, /apt-get install -y libpcap-dev g\+\+ make python3 && npm install/, 'with the fix');
  t.notMatch(r.stderr, /vgnosuch0/, 'before it looks at the interface');
  const install = spawnSync(process.execPath, ['-r', hook, path.join(repo, 'scripts', 'check-native.js')], { encoding: 'utf8', timeout: 20_000 });
  t.equal(install.status, 0, 'the install-time check never fails the install');
  t.match(install.stderr, /native addon did not build during npm install:\n\n {2}cap \(libpcap binding/, 'and says it loudly at install time');
  t.match(install.stderr, /fix: {3}apt-get install -y libpcap-dev/);
});

t.test('without CAP_NET_RAW/CAP_NET_ADMIN: says which capability is missing and how to grant it', async (t) => {
  const ifaces = fs.readdirSync('/sys/class/net').filter((n) => { try { return fs.readFileSync(`/sys/class/net/${n}/type`, 'utf8').trim() === '1'; } catch { return false; } });
  const can = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0 && ifaces.length > 0;
  if (!can) { t.plan(0, 'skipped: needs root (to drop to an unprivileged user), setpriv and an Ethernet interface'); return; }
  // The capability check comes before the capture is opened: nothing is sent on that NIC.
  const r = run(['run', '--config', cfg('g.yaml', `interface: ${ifaces[0]}\nvips: [10.99.0.100]\n`)], true);
  t.equal(r.status, 2, 'exit 2');
  t.match(r.stderr, /needs CAP_NET_RAW \(capture and send raw frames\) and CAP_NET_ADMIN \(install the nftables ingress rule\); run it as root, or give node the capabilities \(setcap/);
});

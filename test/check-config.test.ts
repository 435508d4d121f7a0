// check-config ≡ run (issue 12 item 4): for each config in a table, `vipgate check-config`
// and `vipgate run` agree — run refuses with the same message check-config gives, or, where
// check-config accepts, run gets past the config and stops only at a live fact (an interface
// that does not exist here). The summary shows every key that matters. (Unwritable
// --status-file and state_file paths, refused at start, are checked live in instance-lab.test.ts.)

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from './helpers/run-cli.js';
import { repoRoot } from './helpers/paths.js';

const bin = path.join(repoRoot, 'bin', 'vipgate.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-check-config-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const TOKEN = 'abcdefabcdefabcdef0123';

const checkConfig = (file: string, env: NodeJS.ProcessEnv = {}) => runCli(['check-config', file], env);

function runLive(file: string, env: NodeJS.ProcessEnv = {}, extra: string[] = []) {
  const e = { ...process.env, ...env };
  if (!('VIPGATE_API_TOKEN' in env)) delete e.VIPGATE_API_TOKEN;
  if (!('VIPGATE_CLUSTER_KEY' in env)) delete e.VIPGATE_CLUSTER_KEY;
  return spawnSync(process.execPath, [bin, 'run', '--config', file, '--interface', 'vgnosuch9', ...extra], { encoding: 'utf8', timeout: 30_000, env: e });
}

const BASE = 'interface: eth0\nvips: [10.0.0.100]\nbackends: [{ name: web1, ip: 10.0.1.21 }]\nservices: [{ vip: 10.0.0.100, backend: web1 }]\n';
const CLUSTER = 'cluster: { node: lb-a, peers: [{ name: lb-a, address: 10.0.0.2 }, { name: lb-b, address: 10.0.0.3 }] }\n';
const cases: Array<{ d: string; yaml: string; env?: NodeJS.ProcessEnv; ok: boolean; msg?: RegExp }> = [
  { d: 'a live config without mac (the NIC gives it)', yaml: BASE, ok: true },
  { d: 'an API off loopback without a token', yaml: BASE + 'api: { listen: 0.0.0.0:9180 }\n', ok: false, msg: /api\.listen: the API would listen on 0\.0\.0\.0:9180, which is not a loopback address, without a token/ },
  { d: 'an API off loopback with a token in the config', yaml: BASE + `api: { listen: 0.0.0.0:9180, token: "${TOKEN}" }\n`, ok: true },
  { d: 'an API off loopback with the token in the environment', yaml: BASE + 'api: { listen: 0.0.0.0:9180 }\n', env: { VIPGATE_API_TOKEN: TOKEN }, ok: true },
  { d: 'a token in the environment that is too short', yaml: BASE, env: { VIPGATE_API_TOKEN: 'short' }, ok: false, msg: /VIPGATE_API_TOKEN must be at least 16 characters/ },
  { d: 'a bad address', yaml: BASE.replace('10.0.1.21', '10.0.1.300'), ok: false, msg: /:3:\d+: backends\[0\]\.ip: "10\.0\.1\.300" is not an IPv4 address/ },
  { d: 'a replay config with mac', yaml: 'mac: "02:00:5e:00:00:01"\n' + BASE, ok: true },
  { d: 'a cluster without a key', yaml: BASE + CLUSTER, ok: false, msg: /no cluster key: set cluster\.key_file, or \$VIPGATE_CLUSTER_KEY; generate one with/ },
  { d: 'a cluster with its key in the environment', yaml: BASE + CLUSTER, env: { VIPGATE_CLUSTER_KEY: 'a-cluster-key-0123456789' }, ok: true },
  { d: 'a cluster with a key too short', yaml: BASE + CLUSTER, env: { VIPGATE_CLUSTER_KEY: 'short' }, ok: false, msg: /the cluster key in \$VIPGATE_CLUSTER_KEY is 5 bytes; it needs at least 16/ },
];

for (const c of cases) {
  t.test(c.d, async (t) => {
    const file = path.join(tmp, `${c.d.replace(/\W+/g, '-')}.yaml`);
    fs.writeFileSync(file, c.yaml);
    const cc = await checkConfig(file, c.env);
    const r = runLive(file, c.env);
    if (c.ok) {
      t.equal(cc.code, 0, 'check-config accepts it');
      t.match(cc.out, /config ok\n$/);
      t.equal(r.status, 2, 'run accepts the config too and stops at the live interface');
      t.match(r.stderr, /no network interface named "vgnosuch9"/);
    } else {
      t.equal(cc.code, 2, 'check-config refuses it');
      t.match(cc.err, c.msg!);
      t.equal(r.status, 2, 'run refuses it');
      t.match(r.stderr, c.msg!, 'with the same message');
      t.equal(r.stderr.trim(), cc.err.trim(), 'word for word');
    }
  });
}

t.test('the summary shows every key that matters', async (t) => {
  const file = path.join(tmp, 'full.yaml');
  fs.writeFileSync(file, [
    'interface: eth1', 'mode: nat', 'vips: [10.0.0.100]', 'nat_gateway: 10.0.1.1',
    'backends: [{ name: web1, ip: 10.0.1.21 }]', 'services: [{ vip: 10.0.0.100, port: 80, active: web1 }]',
    `api: { listen: 10.0.0.5:9180, token: "${TOKEN}" }`, 'state_file: /var/lib/vipgate/state.json', 'shm_dir: /run/vipgate/shm',
    'announce: { count: 2, interval: 500ms, refresh: 60s }', 'log: { level: warn, format: text }', '',
  ].join('\n'));
  const r = await checkConfig(file);
  t.equal(r.code, 0);
  for (const want of [
    'mode nat', 'interface eth1', 'mac (from the NIC; replay needs mac:)', '10.0.0.100:80 -> web1', 'nat gateway: 10.0.1.1',
    'api: http://10.0.0.5:9180/v1, bearer token from api.token', 'state file: /var/lib/vipgate/state.json', 'shared state: in /run/vipgate/shm',
    'announce: 2 gratuitous ARPs per VIP, 500ms apart, then every 1m', 'log: level warn, format text',
    'flows: capacity 65536', 'neighbours: capacity 4096',
  ]) t.ok(r.out.includes(want), `shows "${want}"`);
  t.notOk(r.out.includes(TOKEN), 'never the token itself');
  const env = await checkConfig(path.join(tmp, 'full.yaml'), { VIPGATE_API_TOKEN: TOKEN + 'x' });
  t.match(env.out, 'bearer token from $VIPGATE_API_TOKEN', 'the environment wins, as in run');
});

t.test('the live example configs (scenarios/configs/live-*.yaml) validate and match the deployment guide', async (t) => {
  const dir = path.join(repoRoot, 'scenarios', 'configs');
  const dsr = await checkConfig(path.join(dir, 'live-dsr.yaml'));
  t.equal(dsr.code, 0, dsr.err);
  t.match(dsr.out, 'mode dsr, mac (from the NIC; replay needs mac:), interface eth0', 'dsr: the NIC\'s MAC, on eth0');
  t.match(dsr.out, 'api: http://127.0.0.1:9180/v1, no token (loopback only)');
  t.match(dsr.out, 'state file: /var/lib/vipgate/state.json', 'the state file in the systemd unit\'s StateDirectory');
  const nat = await checkConfig(path.join(dir, 'live-nat.yaml'));
  t.equal(nat.code, 0, nat.err);
  t.match(nat.out, 'mode nat, mac (from the NIC; replay needs mac:), interface eth0');
  t.match(nat.out, 'nat gateway: 10.0.1.1', 'the gateway the guide\'s `ip route replace default via 10.0.1.1` names');
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  t.match(readme, 'ip route replace default via 10.0.1.1', 'the guide still names that gateway');
  t.match(readme, 'scenarios/configs/live-dsr.yaml', 'the README points at the dsr example');
  t.match(readme, 'scenarios/configs/live-nat.yaml', 'and at the nat one');
});

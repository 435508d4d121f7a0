// One vipgate per NIC, live (issue 12 item 1): in a namespace lab, a second `vipgate run` on the
// interface the first one serves is refused — with the API port taken and with a free one —
// naming the first one's PID, while the first keeps its nftables table exactly as it was and
// keeps forwarding; after the first is killed with SIGKILL, the next start is not blocked.
// Unwritable --status-file and state_file paths are refused at start before anything is
// installed. Needs root, network namespaces and the libpcap binding; skipped with the reason otherwise.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLab, httpLoad, type Lab } from '../scenarios/lab/lab.js';
import { canRunVipgateLab, labConfigYaml, startVipgate, VIPGATE_BIN, type VipgateProc } from '../scenarios/lab/vipgate.js';

const can = canRunVipgateLab();

/** The table without its counters (they move with the traffic). */
function table(lab: Lab): string {
  const r = lab.exec('vg', ['nft', 'list', 'table', 'netdev', 'vipgate_eth0']);
  return r.code === 0 ? r.stdout.replace(/counter packets \d+ bytes \d+/g, 'counter') : `(no table: ${r.stderr.trim()})`;
}

t.test('a second vipgate on the same NIC is refused; the first keeps its table and keeps forwarding', { skip: can.ok ? false : can.why }, async (t) => {
  let lab: Lab | null = null;
  let vg: VipgateProc | null = null;
  try {
    lab = await createLab({ mode: 'dsr', clients: 1, backends: 2 });

    // Unwritable paths are refused at start, with the path and the reason, before anything is
    // installed (issue 12 item 4): a directory where the status file should be, a state file
    // under a regular file.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-paths-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const cfg = path.join(dir, 'vipgate.yaml');
    fs.writeFileSync(cfg, labConfigYaml(lab));
    fs.mkdirSync(path.join(dir, 'status-is-a-dir'));
    fs.writeFileSync(path.join(dir, 'plain-file'), '');
    for (const [what, flag, p, msg] of [
      ['--status-file a directory', '--status-file', path.join(dir, 'status-is-a-dir'), `--status-file ${path.join(dir, 'status-is-a-dir')}: cannot write it (it is a directory)`],
      ['a state file under a regular file', '--state-file', path.join(dir, 'plain-file', 'state.json'), `cannot write the state file's directory ${path.join(dir, 'plain-file')}`],
    ] as const) {
      const r = lab.exec('vg', [process.execPath, VIPGATE_BIN, 'run', '--config', cfg, flag, p], { timeoutMs: 30_000 });
      t.equal(r.code, 2, `${what}: exit 2`);
      t.match(r.stderr, msg, `${what}: says which path and why`);
      t.match(table(lab), /no table/, `${what}: nothing installed`);
    }

    vg = await startVipgate(lab, labConfigYaml(lab));
    const before = table(lab);
    t.match(before, /table netdev vipgate_eth0/, 'the first one installed its table');
    const url = lab.vipUrls[0]!;

    for (const [what, extra] of [['API port taken', []], ['API port free', ['--api', '127.0.0.1:9181']]] as const) {
      const r = lab.exec('vg', [process.execPath, VIPGATE_BIN, 'run', '--config', vg.configFile, ...extra], { timeoutMs: 30_000 });
      t.equal(r.code, 2, `${what}: the second run exits 2`);
      t.match(r.stderr, `eth0 is already served by vipgate PID ${vg.pid}`, `${what}: it names the first one's PID`);
      t.match(r.stderr, `kill ${vg.pid}`, `${what}: and says how to stop it`);
      t.notMatch(r.stderr, /attached to/, `${what}: it never attached`);
      t.equal(table(lab), before, `${what}: the first one's nftables table is untouched`);
      t.ok(vg.running(), `${what}: the first one still runs`);
      const load = await httpLoad(lab, 'c1', url, 200, { concurrency: 8, timeoutMs: 5000 });
      t.equal(load.failed, 0, `${what}: 200 fresh connections through the first one, none failed ${load.errors.join(', ')}`);
    }
    t.equal(vg.cliJson<{ pid: number }>(['status']).pid, vg.pid, 'the API on the default port is still the first one\'s');

    // A crash must not block the next run: the kernel released the lock with the process.
    vg.signal('SIGKILL');
    await vg.exited;
    await vg.stop();
    vg = await startVipgate(lab, labConfigYaml(lab));
    t.match(vg.log(), /instance lock \/run\/vipgate\/eth0\.netns\d+\.lock/, 'after kill -9 of the first, a new run takes the lock');
    const load = await httpLoad(lab, 'c1', url, 100, { concurrency: 8, timeoutMs: 5000 });
    t.equal(load.failed, 0, 'and forwards');
    const stop = await vg.stop();
    vg = null;
    t.equal(stop.code, 0, 'it stops cleanly');
    t.match(table(lab), /no table/, 'and removes its table at exit');
  } finally {
    if (vg) await vg.stop();
    lab?.teardown();
  }
});

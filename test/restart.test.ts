// What the API changed survives a restart (--state-file), in the namespace lab (dsr):
//   1. register two backends, switch (pin), drain, re-weight through the CLI; SIGTERM vipgate and
//      start it again with the same state file: everything is back and traffic flows as before.
//   2. kill -9 in the middle of a burst of API writes (hundreds a second), 5 times: the state
//      file always parses and is a valid state, vipgate starts from it, and what it restores is
//      the last acknowledged write or the one after it (the write in flight when it died).
// About leftover files: the state is written to `.state.json.tmp-<pid>`, fsynced and renamed over
// state.json, so a kill between the open and the rename leaves that one temporary file of the
// killed process behind; the next vipgate removes it at start. The test checks that after a kill
// every file in the directory is state.json or such a file of a process it killed, and that after
// the restart only state.json is left.
// Needs root and network namespaces; skipped with the reason otherwise.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLab, httpLoad, Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, VipgateProc } from '../scenarios/lab/vipgate';
import type { BackendView, ServiceView, StatusView, VipView } from '../src/control/api-types';
import { checkOverlay } from '../src/control/model';

/** A VIP only the registrations bring in (on b2's and b3's lo, as dsr needs). */
const NEW_VIP = '10.77.0.200';
/** An IP-mode VIP regB also serves (state only: no traffic). */
const IP_VIP = '10.77.0.201';
/** The VIP of the burst's short-lived registrations. */
const BURST_VIP = '10.77.0.210';
const KILL_ROUNDS = 5;
/** Extra delay after the writer's first progress report before kill -9, per round (spreads the kill points). */
const KILL_DELAYS_MS = [0, 137, 251, 389, 61];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function configYaml(lab: Lab): string {
  return [
    '# restart-test config, written by test/restart.test.ts',
    `interface: ${lab.vipgateIf}`,
    `mode: ${lab.mode}`,
    `vips: [${lab.addr.vips[0]}]`,
    'backends:',
    `  - { name: web1, ip: ${lab.addr.backends[0]} }`,
    'services:',
    `  - { vip: ${lab.addr.vips[0]}, backend: web1 }`,
    'flows: { capacity: 4096, closing_timeout: 2s }',
    'announce: { count: 2, interval: 200ms }',
  ].join('\n') + '\n';
}

/** The burst's k-th write (k = 1, 2, ...) of round `round`. Runs in the writer process too (via toString). */
function burstOp(round: number, k: number): { method: string; path: string; body?: unknown } {
  if (k % 20 === 0) {
    return { method: 'POST', path: '/v1/backends', body: { name: `r${round}x${k}`, ip: `10.77.${10 + round}.${((k / 20) % 250) + 1}`, serves: `${BURST_VIP_JS}:80` } };
  }
  if (k % 20 === 10 && k > 20) return { method: 'DELETE', path: `/v1/backends/r${round}x${k - 10}?force=true` };
  return { method: 'PATCH', path: '/v1/backends/regB', body: { weight: (k * 7 + round) % 1001 } };
}
// burstOp's source is shipped to the writer; it must not depend on module scope except this name.
const BURST_VIP_JS = BURST_VIP;

/** Writes sequentially (one in flight), reports progress every 50 acknowledged writes and a summary when a write fails. */
const WRITER_JS = `
const http = require('node:http');
const [host, port, round] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const BURST_VIP_JS = ${JSON.stringify(BURST_VIP)};
const burstOp = ${burstOp.toString()};
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function req(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    const r = http.request({ host, port, method, path, agent, headers }, (res) => {
      let text = ''; res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.setTimeout(5000, () => r.destroy(new Error('timeout')));
    r.end(data);
  });
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
(async () => {
  const g0 = JSON.parse((await req('GET', '/v1/status')).text).generation;
  const t0 = Date.now();
  let acked = 0, error = null;
  for (let k = 1; k <= 200000; k++) {
    const op = burstOp(round, k);
    try {
      const r = await req(op.method, op.path, op.body);
      if (r.status < 200 || r.status > 299) { error = 'HTTP ' + r.status + ' ' + r.text.slice(0, 300) + ' for ' + op.method + ' ' + op.path; break; }
    } catch (e) { error = e.code || e.message; break; }
    acked = k;
    if (k % 50 === 0) out({ progress: k });
  }
  out({ done: true, g0, acked, error, ms: Date.now() - t0 });
})();`;

/** Weight of regB and the burst registrations present after applying ops 1..m of `round` to `from`. */
function applyOps(round: number, m: number, from: { weight: number; burst: Set<string> }): { weight: number; burst: Set<string> } {
  let weight = from.weight;
  const burst = new Set(from.burst);
  for (let k = 1; k <= m; k++) {
    const op = burstOp(round, k);
    if (op.method === 'POST') burst.add((op.body as { name: string }).name);
    else if (op.method === 'DELETE') burst.delete(`r${round}x${k - 10}`);
    else weight = (op.body as { weight: number }).weight;
  }
  return { weight, burst };
}

/** What must survive a restart: everything but counters, live flows, learned MACs and lease countdowns. */
function durable(bs: BackendView[], ss: ServiceView[], vs: VipView[], st: StatusView) {
  return {
    generation: st.generation,
    backends: bs.map(({ flows: _f, connections: _c, mac: _m, macSource: _s, lease, ...rest }) => ({ ...rest, lease: lease ? lease.seconds : null }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    services: [...ss].sort((a, b) => a.service.localeCompare(b.service)),
    vips: [...vs].sort((a, b) => a.vip.localeCompare(b.vip)),
  };
}

const can = canRunVipgateLab();
if (!can.ok) {
  t.plan(0, `skipped: ${can.why}`);
} else {
  t.test('restart with --state-file (dsr lab)', async (t) => {
    const lab = await createLab({ mode: 'dsr', clients: 1, backends: 3 });
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `vipgate-state-${lab.prefix}-`));
    const stateFile = path.join(stateDir, 'state.json');
    let vg: VipgateProc | null = null;
    t.teardown(async () => {
      if (vg) await vg.stop();
      lab.teardown();
      fs.rmSync(stateDir, { recursive: true, force: true });
    });
    const [, ipA, ipB] = lab.addr.backends as [string, string, string];
    for (const ns of ['b2', 'b3']) lab.exec(ns, ['ip', 'addr', 'add', `${NEW_VIP}/32`, 'dev', 'lo']);
    const yaml = configYaml(lab);
    const args = ['--state-file', stateFile];
    const start = async () => { vg = await startVipgate(lab, yaml, args); return vg; };
    const snapshot = (v: VipgateProc) => durable(
      v.cliJson<{ backends: BackendView[] }>(['backends']).backends, v.cliJson<{ services: ServiceView[] }>(['services']).services,
      v.cliJson<{ vips: VipView[] }>(['vips']).vips, v.cliJson<StatusView>(['status']));
    const regBWeight = (v: VipgateProc) => v.cliJson<{ backends: BackendView[] }>(['backends']).backends.find((b) => b.name === 'regB')?.weight;
    /** Wait until vipgate knows regB's MAC, so the first SYNs are not spent on ARP. */
    const resolved = async (v: VipgateProc) => {
      for (let i = 0; i < 40; i++) {
        if (v.cliJson<{ backends: BackendView[] }>(['backends']).backends.find((b) => b.name === 'regB')?.mac) return;
        await sleep(250);
      }
    };

    await t.test('SIGTERM and start again: registrations, drain, weights and the pin come back', async (t) => {
      const v = await start();
      const run = (a: string[]) => {
        const r = v.cli(a);
        t.equal(r.code, 0, `vipgate ${a.join(' ')} ${r.stderr.trim()}`);
      };
      run(['register', '--name', 'regA', '--ip', ipA, '--serves', `${NEW_VIP}:80`]);
      run(['register', '--name', 'regB', '--ip', ipB, '--serves', `${NEW_VIP}:80,${IP_VIP}`, '--weight', '50', '--lease', '600']);
      run(['switch', `${NEW_VIP}:80`, 'regB']);
      run(['set', 'regA', '--state', 'drain']);
      run(['set', 'web1', '--weight', '70']);
      const before = snapshot(v);
      t.match(before.services.find((s) => s.service === `${NEW_VIP}:80`), { pinned: 'regB', serving: ['regB'], members: [{ backend: 'regB' }, { backend: 'regA', state: 'drain' }] },
        `${NEW_VIP}:80: pinned to regB, regA drained`);
      t.match(before.backends.find((b) => b.name === 'regB'), { weight: 50, lease: 600, source: 'api' }, 'regB: weight 50, lease 600 s');
      t.match(before.backends.find((b) => b.name === 'web1'), { weight: 70, source: 'config' }, 'web1 re-weighted through the API');
      await resolved(v);
      const pre = await httpLoad(lab, 'c1', `http://${NEW_VIP}/`, 50, { concurrency: 8, timeoutMs: 5000 });
      t.same([pre.failed, pre.byBody], [0, { web3: 50 }], `before the restart: 50 requests to ${NEW_VIP}, all regB (web3) ${pre.errors.join(', ')}`);

      const stop = await v.stop();
      vg = null;
      t.equal(stop.code, 0, 'SIGTERM: vipgate exits 0');
      t.same(fs.readdirSync(stateDir), ['state.json'], 'the state directory holds state.json and nothing else');
      const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { generation: number };
      t.equal(saved.generation, before.generation, 'the state file holds the last generation');

      const v2 = await start();
      t.match(v2.log(), new RegExp(`state file ${stateFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: generation ${before.generation}, 2 registered backend\\(s\\) restored`),
        'vipgate says what it restored');
      t.same(snapshot(v2), before, 'after the restart: backends, services, VIPs and generation as before (counters, flows, learned MACs aside)');
      await resolved(v2);
      const post = await httpLoad(lab, 'c1', `http://${NEW_VIP}/`, 50, { concurrency: 8, timeoutMs: 5000 });
      t.same([post.failed, post.byBody], [0, { web3: 50 }], `after the restart: 50 requests to ${NEW_VIP}, all regB (web3) ${post.errors.join(', ')}`);
      const web1 = await httpLoad(lab, 'c1', `http://${lab.addr.vips[0]}/`, 20, { concurrency: 4, timeoutMs: 5000 });
      t.same([web1.failed, web1.byBody], [0, { web1: 20 }], 'the config\'s own VIP still works');
    });

    await t.test(`kill -9 during a burst of API writes, ${KILL_ROUNDS} times`, async (t) => {
      let v: VipgateProc = vg ?? await start();
      let model = { weight: regBWeight(v) ?? -1, burst: new Set<string>() };
      const killed: number[] = [];
      for (let round = 1; round <= KILL_ROUNDS; round++) {
        const writer = lab.spawn('vg', [process.execPath, '-e', WRITER_JS, '127.0.0.1', '9180', String(round)]);
        let out = '', err = '';
        writer.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
        writer.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
        const writerExit = new Promise<number | null>((r) => writer.once('exit', (c) => r(c)));
        const deadline = Date.now() + 20_000;
        while (!out.includes('"progress"') && !out.includes('"done"') && Date.now() < deadline) await sleep(10);
        if (!out.includes('"progress"')) { writer.kill('SIGKILL'); throw new Error(`round ${round}: the writer made no progress: ${out} ${err}`); }
        await sleep(KILL_DELAYS_MS[round - 1]!);
        const pid = v.pid;
        v.signal('SIGKILL');
        killed.push(pid);
        t.equal(await v.exited, null, `round ${round}: vipgate (pid ${pid}) killed by SIGKILL mid-burst`);
        await v.stop(); // reaped already: only removes its run directory
        vg = null;
        const wcode = await Promise.race([writerExit, sleep(15_000).then(() => 'timeout')]);
        t.equal(wcode, 0, `round ${round}: the writer ends when the API goes away`);
        const summary = out.split('\n').filter((l) => l.includes('"done"')).map((l) => JSON.parse(l) as { g0: number; acked: number; error: string | null; ms: number })[0];
        if (!summary) throw new Error(`round ${round}: no summary from the writer: ${out.slice(-500)} ${err}`);
        t.notMatch(summary.error ?? '', /^HTTP/, `round ${round}: no write was refused (${summary.error})`);
        t.comment(`round ${round}: ${summary.acked} writes acknowledged in ${summary.ms} ms (${Math.round(summary.acked / (summary.ms / 1000))}/s) before kill -9`);
        t.ok(summary.acked >= 50, `round ${round}: ${summary.acked} writes acknowledged before the kill`);

        // The file as the crash left it: whole JSON, a valid state, no older than the last acknowledged write.
        const text = fs.readFileSync(stateFile, 'utf8');
        let raw: unknown = null;
        try { raw = JSON.parse(text); t.pass(`round ${round}: the state file parses`); } catch (e) { t.fail(`round ${round}: the state file does not parse: ${(e as Error).message}: ${text.slice(0, 300)}`); }
        let gen = -1;
        try { gen = checkOverlay(raw).generation; t.pass(`round ${round}: and is a valid vipgate state`); } catch (e) { t.fail(`round ${round}: not a valid state: ${(e as Error).message}`); }
        const applied = gen - summary.g0;
        t.ok(applied === summary.acked || applied === summary.acked + 1,
          `round ${round}: restored generation ${gen} = ${summary.g0} + ${applied} writes: the last acknowledged (${summary.acked}) or the one in flight`);
        const leftovers = fs.readdirSync(stateDir).filter((f) => f !== 'state.json');
        const allowed = new Set(killed.map((p) => `.state.json.tmp-${p}`));
        t.same(leftovers.filter((f) => !allowed.has(f)), [], `round ${round}: no stray files (temporary files of killed processes: ${leftovers.join(', ') || 'none'})`);

        // Start again from it: the state vipgate shows is exactly that generation's.
        v = await start();
        const st = v.cliJson<StatusView>(['status']);
        t.equal(st.generation, gen, `round ${round}: vipgate starts from the file, generation ${gen}`);
        t.same(fs.readdirSync(stateDir).filter((f) => f !== 'state.json'), [], `round ${round}: the restarted vipgate removed the killed one's temporary file`);
        model = applyOps(round, Math.max(0, applied), model);
        const bs = v.cliJson<{ backends: BackendView[] }>(['backends']).backends;
        t.equal(bs.find((b) => b.name === 'regB')?.weight, model.weight, `round ${round}: regB's weight is the one write ${applied} set (${model.weight})`);
        t.same(bs.filter((b) => /^r\d+x\d+$/.test(b.name)).map((b) => b.name).sort(), [...model.burst].sort(),
          `round ${round}: the burst's registrations are exactly those standing after write ${applied}`);
        t.match(bs.find((b) => b.name === 'regA'), { state: 'drain' }, `round ${round}: regA is still drained`);
      }

      // After all that: the service still works.
      const r = v.api('PATCH', '/v1/backends/regB', { weight: 100 });
      t.equal(r.status, 200, 'regB back to weight 100');
      await resolved(v);
      const load = await httpLoad(lab, 'c1', `http://${NEW_VIP}/`, 50, { concurrency: 8, timeoutMs: 5000 });
      t.same([load.failed, load.byBody], [0, { web3: 50 }], `after ${KILL_ROUNDS} crashes: 50 requests to ${NEW_VIP}, all regB (web3) ${load.errors.join(', ')}`);
      const stop = await v.stop();
      vg = null;
      t.equal(stop.code, 0, 'SIGTERM: exits 0');
    });
  });
}

// The namespace lab, checked with the kernel alone (no vipgate): both topologies come up, every
// backend serves its own name, clients reach the direct baseline over fresh connections, nobody
// answers ARP for a VIP (dsr backends keep quiet) or for the nat gateway, nat backends route
// back through the gateway, and teardown leaves nothing behind — after a throw, after an
// uncaught exception in the lab's process, after SIGTERM — while the stale sweep deletes only
// its own pattern. Needs root and network namespaces; skipped with the reason otherwise.

import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  arpProbe,
  canProbeArp,
  canRunLab,
  createLab,
  httpGetIn,
  httpLoad,
  sweepStaleLabs,
  type Lab,
} from '../scenarios/lab/lab.js';
import { CLUSTER_PORT, heal, partition, setNodeLink } from '../scenarios/lab/cluster.js';

const labJs = path.resolve(__dirname, '..', 'scenarios', 'lab', 'lab.js');

function netnsList(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}
const leftovers = (prefix: string): string[] => netnsList().filter((n) => n.startsWith(`${prefix}-`));

/** ARP requests from ns for ip, with the lab's own probe (not arping): answered or not, with its result for the failure message. */
function arping(lab: Lab, ns: string, ip: string): Promise<{ answered: boolean; out: string }> {
  return arpProbe(lab, ns, ip, 2).then((r) => ({ answered: r.replies > 0, out: JSON.stringify(r) }));
}

/** Checks every host namespace: IPv6 off, offloads off, the advertised MAC. */
function checkInterfaces(tt: Tap, lab: Lab): void {
  const hosts: [string, string][] = [
    [lab.ns.vipgate, lab.mac.vipgate],
    ...lab.ns.clients.map((n, i): [string, string] => [n, lab.mac.clients[i]!]),
    ...lab.ns.backends.map((n, i): [string, string] => [n, lab.mac.backends[i]!]),
  ];
  for (const [ns, mac] of hosts) {
    const v6 = lab.exec(ns, ['cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6', '/proc/sys/net/ipv6/conf/all/disable_ipv6']);
    if (v6.code === 0) tt.equal(v6.stdout.trim().split('\n').join(','), '1,1', `${ns}: IPv6 disabled`);
    const k = lab.exec(ns, ['ethtool', '-k', 'eth0']).stdout;
    for (const f of ['rx-checksumming', 'tx-checksumming', 'tcp-segmentation-offload', 'generic-segmentation-offload', 'generic-receive-offload']) {
      tt.match(k, new RegExp(`^${f}: off`, 'm'), `${ns}: ${f} off`);
    }
    tt.match(lab.exec(ns, ['ip', '-br', 'link', 'show', 'dev', 'eth0']).stdout, mac, `${ns}: eth0 has ${mac}`);
  }
  const sw = lab.exec(lab.ns.switch, ['ip', '-d', 'link', 'show', 'dev', 'br0']).stdout;
  tt.match(sw, /stp_state 0/, 'bridge: STP off');
  tt.match(sw, /forward_delay 0/, 'bridge: forward delay 0');
  const ports = lab.exec(lab.ns.switch, ['ethtool', '-k', 'b1']).stdout;
  tt.match(ports, /^tx-checksumming: off/m, 'switch-side veth ends: offloads off too');
}
type Tap = Test;

async function checkDirect(tt: Tap, lab: Lab): Promise<void> {
  for (const c of lab.ns.clients) {
    tt.equal(httpGetIn(lab, c, lab.directUrl), 'web1', `${c} reaches ${lab.directUrl} (web1) without vipgate`);
  }
  const loads = await Promise.all(lab.ns.clients.map((c) => httpLoad(lab, c, lab.directUrl, 200, { concurrency: 16, timeoutMs: 3000 })));
  loads.forEach((r, i) => {
    const c = lab.ns.clients[i];
    tt.same({ ok: r.ok, failed: r.failed, errors: r.errors }, { ok: 200, failed: 0, errors: [] }, `${c}: 200 fresh connections, no failure`);
    tt.same(r.byBody, { web1: 200 }, `${c}: every answer is web1`);
    tt.equal(r.latenciesMs.length, 200, `${c}: a connect time per request`);
    tt.ok(r.latenciesMs.every((x) => x >= 0 && x < 3000), `${c}: connect times are measured (max ${Math.max(...r.latenciesMs).toFixed(2)} ms)`);
    tt.ok(r.totalMs.every((x, j) => x >= r.latenciesMs[j]!), `${c}: request time includes connect time`);
  });
}

function checkBackendsLocal(tt: Tap, lab: Lab): void {
  lab.ns.backends.forEach((b, i) => {
    const name = lab.backendNames[i]!;
    tt.equal(httpGetIn(lab, b, 'http://127.0.0.1/'), name, `${b} answers ${name} on 127.0.0.1`);
    tt.equal(httpGetIn(lab, b, `http://${lab.addr.backends[i]}/`), name, `${b} answers ${name} on ${lab.addr.backends[i]}`);
  });
}

async function withLab(tt: Tap, mode: 'dsr' | 'nat', body: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await createLab({ mode, log: (s) => tt.comment(s) });
  try {
    await body(lab);
  } finally {
    lab.teardown();
    tt.same(leftovers(lab.prefix), [], `teardown: no namespace with prefix ${lab.prefix} left`);
  }
}

const can = canRunLab();
if (!can.ok) {
  t.plan(0, `skipped: lab needs root and network namespaces (${can.why})`);
} else {
  t.test('the stale sweep deletes only its own pattern, and only for a dead creator', async (tt) => {
    // A PID that surely is gone: a child that ran and was reaped.
    const dead = spawnSync('true').pid!;
    const hex = dead.toString(16);
    const rnd = (): string => Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0');
    const stale = [`vg${hex}x${rnd()}-sw`, `vg${hex}x${rnd()}-b1`, `vg${hex}x${rnd()}-r1`, `vg${hex}x${rnd()}-f2`, `vg${hex}x${rnd()}-lb3`];
    const foreign = [`vg${hex}x${rnd()}-other`, `vg${process.pid.toString(16)}x${rnd()}-sw`];
    try {
      for (const n of [...stale, ...foreign]) tt.equal(spawnSync('ip', ['netns', 'add', n]).status, 0, `made ${n}`);
      const swept = sweepStaleLabs((s) => tt.comment(s));
      tt.same([...swept].filter((n) => stale.includes(n) || foreign.includes(n)).sort(), [...stale].sort(), 'swept the dead creator\'s lab namespaces only');
      tt.same(netnsList().filter((n) => foreign.includes(n)).sort(), [...foreign].sort(), 'a non-matching role and a live creator\'s namespace stay');
    } finally {
      for (const n of [...stale, ...foreign]) spawnSync('ip', ['netns', 'delete', n], { stdio: 'ignore' });
    }
  });

  t.test('dsr: one subnet, VIPs on the backends\' lo, nobody answers ARP for a VIP', (tt) => withLab(tt, 'dsr', async (lab) => {
    tt.equal(lab.addr.gateway, null);
    tt.equal(lab.addr.direct, '10.77.0.21');
    tt.same(lab.addr.backends, ['10.77.0.21', '10.77.0.22', '10.77.0.23']);
    checkInterfaces(tt, lab);
    checkBackendsLocal(tt, lab);
    lab.ns.backends.forEach((b, i) => {
      for (const v of lab.addr.vips) tt.equal(httpGetIn(lab, b, `http://${v}/`), lab.backendNames[i], `${b} serves ${v} (held on lo)`);
      const sc = lab.exec(b, ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce', 'net.ipv4.conf.all.rp_filter']);
      tt.equal(sc.stdout.trim().split('\n').join(','), '1,2,0', `${b}: arp_ignore=1 arp_announce=2 rp_filter=0`);
    });
    // Every client reaches every backend on the shared subnet.
    for (const c of lab.ns.clients) {
      lab.addr.backends.forEach((a, i) => tt.equal(httpGetIn(lab, c, `http://${a}/`), lab.backendNames[i], `${c} -> ${a}`));
    }
    await checkDirect(tt, lab);
    // ARP: a backend's own address is answered (the probe works), a VIP is not (nobody owns it
    // until vipgate runs — the backends hold it on lo but keep quiet).
    const probe = canProbeArp();
    await tt.test('ARP', { skip: probe.ok ? false : probe.why }, async (tt) => {
      const [own, ...vips] = await Promise.all([
        arping(lab, lab.ns.clients[0]!, lab.addr.backends[1]!),
        ...lab.ns.clients.flatMap((c) => lab.addr.vips.map((v) => arping(lab, c, v))),
      ]);
      tt.ok(own!.answered, `ARP for ${lab.addr.backends[1]} is answered`, { out: own!.out });
      vips.forEach((r) => tt.notOk(r.answered, 'ARP for a VIP gets no answer', { out: r.out }));
    });
  }));

  t.test('nat: backends on 10.77.1.0/24 behind the gateway vipgate owns, direct baseline on b1', (tt) => withLab(tt, 'nat', async (lab) => {
    tt.equal(lab.addr.gateway, '10.77.1.1');
    tt.equal(lab.addr.direct, '10.77.0.31');
    tt.same(lab.addr.backends, ['10.77.1.21', '10.77.1.22', '10.77.1.23']);
    checkInterfaces(tt, lab);
    checkBackendsLocal(tt, lab);
    await checkDirect(tt, lab);
    for (const c of lab.ns.clients) {
      tt.not(lab.exec(c, ['ip', 'route', 'get', '10.77.1.21']).code, 0, `${c} has no route to the backends' subnet`);
    }
    lab.ns.backends.forEach((b, i) => {
      const r = lab.exec(b, ['ip', 'route', 'get', '10.77.0.11', 'from', lab.addr.backends[i]!]).stdout;
      tt.match(r, /via 10\.77\.1\.1 /, `${b}: replies from ${lab.addr.backends[i]} go through the gateway`);
    });
    const b1Direct = lab.exec(lab.ns.backends[0]!, ['ip', 'route', 'get', '10.77.0.11', 'from', lab.addr.direct]).stdout;
    tt.notMatch(b1Direct, /via/, 'b1: replies from the direct address go straight to the client');
    const probe = canProbeArp();
    await tt.test('ARP', { skip: probe.ok ? false : probe.why }, async (tt) => {
      const [own, gw, vip] = await Promise.all([
        arping(lab, lab.ns.backends[1]!, lab.addr.backends[0]!),
        arping(lab, lab.ns.backends[1]!, lab.addr.gateway!),
        arping(lab, lab.ns.clients[0]!, lab.addr.vips[0]!),
      ]);
      tt.ok(own!.answered, 'ARP for a backend is answered', { out: own!.out });
      tt.notOk(gw!.answered, 'ARP for the gateway gets no answer (no kernel has it)', { out: gw!.out });
      tt.notOk(vip!.answered, 'ARP for a VIP gets no answer', { out: vip!.out });
    });
  }));

  t.test('teardown after a throw leaves nothing, and is idempotent', async (tt) => {
    const lab = await createLab({ mode: 'dsr', clients: 1, backends: 1 });
    const pids = spawnSync('ip', ['netns', 'pids', lab.ns.backends[0]!], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    tt.ok(pids.length === 1 && pids[0]! > 0, 'the backend runs its server');
    let caught: unknown;
    try {
      try {
        httpGetIn(lab, lab.ns.clients[0]!, lab.directUrl);
        throw new Error('a failing step');
      } finally {
        lab.teardown();
      }
    } catch (e) {
      caught = e;
    }
    tt.equal((caught as Error).message, 'a failing step');
    tt.same(leftovers(lab.prefix), [], 'no namespace left');
    // Gone or a zombie: teardown is synchronous, so this process has not reaped its child yet.
    const running = (p: number): boolean => {
      try { return !/^\S+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8')); } catch { return false; }
    };
    tt.notOk(pids.some(running), 'the server process has ended');
    lab.teardown();
    tt.throws(() => lab.exec(lab.ns.clients[0]!, ['true']), /after teardown/, 'exec after teardown refuses');
  });

  t.test('createLab refuses bad options and never deletes a namespace it did not create', async (tt) => {
    await tt.rejects(createLab({ mode: 'bridge' as 'dsr' }), /mode must be/);
    await tt.rejects(createLab({ mode: 'dsr', vips: ['10.77.0.21'] }), /VIP "10.77.0.21" must be/);
    await tt.rejects(createLab({ mode: 'dsr', vips: ['192.168.1.10'] }), /must be in 10.77.0.0\/24/);
    await tt.rejects(createLab({ mode: 'nat', backends: 10 }), /backends must be an integer 1..9/);
    await tt.rejects(createLab({ mode: 'nat', nodes: 1 }), /nodes must be an integer 2..8 \(a cluster lab\)/);
    await tt.rejects(createLab({ mode: 'nat', nodes: 9 }), /nodes must be an integer 2..8/);
    await tt.rejects(createLab({ mode: 'dsr', nodes: 3, vips: ['10.77.0.4'] }), /VIP "10.77.0.4" must be .*\.2-\.4 /);
    const prefix = `vg${process.pid.toString(16)}x${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
    const theirs = `${prefix}-c1`;
    tt.equal(spawnSync('ip', ['netns', 'add', theirs]).status, 0, `someone else's ${theirs} exists`);
    try {
      await tt.rejects(createLab({ mode: 'dsr', prefix, clients: 1, backends: 1 }), /already exist/);
      tt.same(leftovers(prefix), [theirs], 'the failed lab deleted nothing but what it made (nothing)');
    } finally {
      spawnSync('ip', ['netns', 'delete', theirs]);
    }
  });

  t.test('cluster lab (nodes: 3): lb1..lb3 on the bridge, heartbeat path partitioned and healed, a link cut and restored', async (tt) => {
    const lab = await createLab({ mode: 'nat', nodes: 3, clients: 1, backends: 1, log: (s) => tt.comment(s) });
    try {
      tt.same(lab.ns.nodes, [1, 2, 3].map((i) => `${lab.prefix}-lb${i}`), 'namespaces <prefix>-lb1..lb3');
      tt.equal(lab.ns.vipgate, lab.ns.nodes[0], 'node 1 is the vipgate host of single-node helpers');
      tt.same(lab.addr.nodes, ['10.77.0.2', '10.77.0.3', '10.77.0.4']);
      tt.equal(lab.addr.vipgate, '10.77.0.2');
      tt.same(lab.mac.nodes, ['02:77:00:00:00:02', '02:77:00:00:00:03', '02:77:00:00:00:04']);
      tt.notOk(netnsList().includes(`${lab.prefix}-vg`), 'no -vg namespace in a cluster lab');
      tt.match(lab.exec('vg', ['ip', '-br', 'addr', 'show', 'dev', 'eth0']).stdout, /10\.77\.0\.2\/24/, '`vg` names lb1');
      lab.ns.nodes.forEach((ns, i) => tt.match(lab.exec(ns, ['ip', '-br', 'link', 'show', 'dev', 'eth0']).stdout, lab.mac.nodes[i]!, `${ns}: eth0 has ${lab.mac.nodes[i]}`));
      // The heartbeat path: UDP to the cluster port between nodes, through the kernels.
      /** One datagram from node `from` to node `to`'s cluster port, through their kernels: received or not. */
      const udp = async (from: number, to: number): Promise<boolean> => {
        const recv = lab.spawn(lab.ns.nodes[to]!, [process.execPath, '-e', `const d=require('dgram').createSocket('udp4');` +
          `d.bind(${CLUSTER_PORT},'${lab.addr.nodes[to]}',()=>process.stdout.write('ready\\n'));d.on('message',()=>process.exit(0));setTimeout(()=>process.exit(1),1000)`]);
        const code = new Promise<number | null>((r) => recv.on('exit', (c) => r(c)));
        await new Promise<void>((r) => { recv.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) r(); }); recv.on('exit', () => r()); });
        lab.exec(lab.ns.nodes[from]!, [process.execPath, '-e', `const s=require('dgram').createSocket('udp4');s.send('hb',${CLUSTER_PORT},'${lab.addr.nodes[to]}',()=>s.close())`]);
        return (await code) === 0;
      };
      tt.ok(await udp(0, 1), 'lb1 -> lb2 on the cluster port');
      partition(lab, [[0], [1, 2]]);
      tt.notOk(await udp(0, 1), 'partitioned: lb1 -> lb2 dropped');
      tt.notOk(await udp(1, 0), 'partitioned: lb2 -> lb1 dropped');
      tt.ok(await udp(1, 2), 'partitioned: lb2 -> lb3 still passes (same side)');
      heal(lab);
      tt.ok(await udp(0, 1), 'healed: lb1 -> lb2 again');
      setNodeLink(lab, 0, false);
      tt.notOk(await udp(1, 0), 'link cut: lb2 -> lb1 lost');
      setNodeLink(lab, 0, true);
      tt.ok(await udp(1, 0), 'link restored: lb2 -> lb1 again');
    } finally {
      lab.teardown();
      tt.same(leftovers(lab.prefix), [], 'teardown: nothing left');
    }
  });

  // The lab inside a child process that dies: by an uncaught exception, and by SIGTERM.
  const childScript = (then: 'throw' | 'wait'): string => `
const { createLab } = require(${JSON.stringify(labJs)});
createLab({ mode: 'nat', clients: 1, backends: 1 }).then((lab) => {
  process.stdout.write(lab.prefix + '\\n');
  ${then === 'throw' ? "setTimeout(() => { throw new Error('boom'); }, 50);" : 'setInterval(() => {}, 1000);'}
});`;
  for (const how of ['throw', 'wait'] as const) {
    t.test(`a lab process that dies (${how === 'throw' ? 'uncaught exception' : 'SIGTERM'}) tears its lab down`, async (tt) => {
      const child = spawn(process.execPath, ['-e', childScript(how)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const prefix = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        child.on('exit', () => reject(new Error(`child exited before its lab was up: ${err}`)));
      });
      tt.equal(leftovers(prefix).length, 4, `the child's lab ${prefix} is up (sw, vg, c1, b1)`);
      if (how === 'wait') child.kill('SIGTERM');
      const [code, sig] = await new Promise<[number | null, string | null]>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve([child.exitCode, child.signalCode]);
        else child.on('exit', (c, s) => resolve([c, s]));
      });
      if (how === 'throw') tt.equal(code, 1, 'the child died of its exception');
      else tt.equal(sig, 'SIGTERM', 'the child died of SIGTERM (re-raised after teardown)');
      tt.same(leftovers(prefix), [], 'no namespace left');
    });
  }
}

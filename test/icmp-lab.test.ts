// ICMP through vipgate, live in the namespace lab against real Linux kernels: `ping` gets its
// replies from vipgate, and Path MTU discovery works through vipgate in dsr and nat, so a large
// download (and upload) completes over a path whose MTU is smaller than the backend's link.
// Needs root, network namespaces and the libpcap binding; skipped with the reason otherwise.
//
// The topology puts the small-MTU hop where its ICMP error has to cross vipgate:
//
//   f1 10.77.2.11 ──(eth1, route MTU 1280)── r1 10.77.2.1 | 10.77.0.3 ── br0 ── vg (vipgate), c1, b1
//
// - f1 is a client one router away; r1 forwards, and its route toward f1 is locked to MTU 1280
//   (ip route ... mtu lock 1280), so it cannot forward the backend's 1500-byte segments to f1:
//   it answers each with "fragmentation needed, next-hop MTU 1280" to their source, the VIP.
// - r1 resolves the VIP on br0 by ARP, and vipgate answers: the error arrives at vipgate. In dsr
//   vipgate passes it to the backend (MAC rewrite; the backend holds the VIP on lo); in nat it
//   rewrites the outer destination and the quoted source from the VIP to the backend's address.
//   The backend's kernel lowers its PMTU toward f1 and resends smaller segments. Without that,
//   the download stalls (a PMTU black hole: Linux does not probe by default, tcp_mtu_probing=0).
// - f1's own interface MTU is 1500, so it advertises MSS 1460 and the backend does send full
//   segments; f1's uploads are not limited on the way in (the lock is on r1's route to f1 only).
// - dsr: b1 routes 10.77.2.0/24 via r1 and answers f1 directly from the VIP; nat: b1's default
//   route is vipgate's gateway address and vipgate sends the rewritten replies to r1's MAC.
//
// nat also carries errors the other way. There b1 is a container host: port 8081 of its address
// is published (nftables DNAT, as Docker does) to a server in f2 behind a link whose route MTU
// is 1280:
//
//   f1 ── r1 ── br0 ── vg ── b1 10.77.1.21 ──(eth1, route MTU 1280)── f2 10.77.3.2:8080
//
// f1's 1500-byte upload segments reach b1 through vipgate, and b1's kernel cannot forward them
// to f2: it sends "fragmentation needed" to f1 (conntrack turns the quote back into f1 -> b1:8081),
// routed through its gateway, vipgate, which rewrites it to be from and about the VIP. f1's
// kernel lowers its PMTU toward the VIP, and the upload completes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createLab, Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, labConfigYaml, VipgateProc } from '../scenarios/lab/vipgate';

const R1_FRONT = '10.77.0.3', R1_BACK = '10.77.2.1', F1 = '10.77.2.11', PATH_MTU = 1280;
const XFER_PORT = 8080;
const DOWNLOAD = 2_000_000, UPLOAD = 1_000_000;

// A transfer server for the backend: GET /N answers N bytes; POST answers the byte count it read.
const XFER_SERVER_JS = `
const http = require('node:http');
http.createServer((req, res) => {
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(String(n)));
    return;
  }
  const n = Math.min(Number(req.url.slice(1)) || 0, 50e6);
  res.writeHead(200, { 'content-length': n });
  res.end(Buffer.alloc(n, 0x61));
}).listen(${XFER_PORT}, () => process.stdout.write('listening\\n'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;

// The client side: one GET (prints the bytes received) or one POST of N bytes (prints the answer).
const XFER_CLIENT_JS = `
const http = require('node:http');
const [method, url, n] = process.argv.slice(1);
const req = http.request(url, { method, agent: false, headers: method === 'POST' ? { 'content-length': n } : {} }, (res) => {
  let got = 0, body = '';
  res.on('data', (c) => { got += c.length; if (method === 'POST') body += c; });
  res.on('end', () => { process.stdout.write(method === 'POST' ? body : String(got)); process.exit(0); });
});
req.setTimeout(20000, () => { process.stderr.write('timeout: stalled for 20 s'); process.exit(1); });
req.on('error', (e) => { process.stderr.write(e.code || e.message); process.exit(1); });
req.end(method === 'POST' ? Buffer.alloc(Number(n), 0x62) : undefined);`;

function sh(lab: Lab, ns: string, script: string): void {
  const r = lab.exec(ns, ['sh', '-ec', script]);
  if (r.code !== 0) throw new Error(`${ns}: ${script}\n${r.stderr}`);
}

/** r1 and f1 beyond it, as in the diagram above. */
function addFarClient(lab: Lab): void {
  lab.addHost('r1');
  lab.addHost('f1');
  lab.link('r1', 'eth0', 'sw', 'r1', '02:77:00:00:00:03');
  lab.link('r1', 'eth1', 'f1', 'eth0', '02:77:02:00:00:01');
  sh(lab, 'r1', [
    `ip addr add ${R1_FRONT}/24 dev eth0`,
    `ip addr add ${R1_BACK}/24 dev eth1`,
    'echo 1 > /proc/sys/net/ipv4/ip_forward',
    // The small hop: forwarding honours a route's MTU (a locked one is never raised by PMTU news).
    `ip route replace 10.77.2.0/24 dev eth1 proto kernel scope link src ${R1_BACK} mtu lock ${PATH_MTU}`,
  ].join('\n'));
  sh(lab, 'f1', [`ip addr add ${F1}/24 dev eth0`, `ip route add default via ${R1_BACK} dev eth0`].join('\n'));
  if (lab.mode === 'dsr') for (const b of lab.ns.backends) sh(lab, b, `ip route add 10.77.2.0/24 via ${R1_FRONT} dev eth0`);
}

const F2 = '10.77.3.2', B1_INNER = '10.77.3.1', PUBLISHED_PORT = 8081;

/** nat: f2, a "container" behind b1 with b1's port 8081 published to it (see the diagram above). */
function addContainer(lab: Lab): void {
  lab.addHost('f2');
  lab.link('b1', 'eth1', 'f2', 'eth0');
  sh(lab, 'b1', [
    `ip addr add ${B1_INNER}/24 dev eth1`,
    'echo 1 > /proc/sys/net/ipv4/ip_forward',
    `ip route replace 10.77.3.0/24 dev eth1 proto kernel scope link src ${B1_INNER} mtu lock ${PATH_MTU}`,
  ].join('\n'));
  const nft = lab.exec('b1', ['nft', '-f', '-'], {
    input: `table ip publish {\n  chain pre { type nat hook prerouting priority dstnat; tcp dport ${PUBLISHED_PORT} dnat to ${F2}:${XFER_PORT}; }\n}\n`,
  });
  if (nft.code !== 0) throw new Error(`b1: nft DNAT: ${nft.stderr}`);
  sh(lab, 'f2', [`ip addr add ${F2}/24 dev eth0`, `ip route add default via ${B1_INNER} dev eth0`].join('\n'));
}

function startXferServer(lab: Lab, ns: string): Promise<void> {
  const child = lab.spawn(ns, [process.execPath, '-e', XFER_SERVER_JS]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`transfer server in ${ns}: no "listening" in 10 s`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`transfer server in ${ns} exited ${code}`)); });
  });
}

function xfer(lab: Lab, ns: string, method: 'GET' | 'POST', url: string, n: number): { ok: boolean; out: string; ms: number } {
  const t0 = Date.now();
  const r = lab.exec(ns, [process.execPath, '-e', XFER_CLIENT_JS, method, url, String(n)], { timeoutMs: 30_000 });
  return { ok: r.code === 0, out: r.code === 0 ? r.stdout.trim() : r.stderr.trim(), ms: Date.now() - t0 };
}

const can = canRunVipgateLab();
const havePing = spawnSync('ping', ['-V'], { stdio: 'ignore' }).status === 0;
if (!can.ok) {
  t.plan(0, `skipped: ICMP lab needs ${can.why}`);
} else if (!havePing) {
  t.plan(0, 'skipped: the ping command is not installed (apt-get install -y iputils-ping)');
} else {
  for (const mode of ['dsr', 'nat'] as const) {
    t.test(`live ${mode}: ping a VIP, and PMTU discovery through vipgate`, async (t) => {
      let lab: Lab | null = null;
      let vg: VipgateProc | null = null;
      try {
        lab = await createLab({ mode, clients: 1, backends: 1, log: (s) => t.comment(s) });
        addFarClient(lab);
        vg = await startVipgate(lab, labConfigYaml(lab));
        await startXferServer(lab, 'b1');
        const vip = lab.addr.vips[0]!;

        // ping: the kernel's own echo requests, answered by vipgate (from the client's subnet
        // and from beyond the router), with the request's id/seq checked by ping itself.
        for (const ns of ['c1', 'f1']) {
          const p = lab.exec(ns, ['ping', '-c', '3', '-i', '0.2', '-W', '2', vip], { timeoutMs: 10_000 });
          t.match(p.stdout, /3 packets transmitted, 3 received/, `${ns}: ping ${vip}: 3 replies\n${p.stdout}${p.stderr}`);
        }
        const stray = lab.exec('c1', ['ping', '-c', '1', '-W', '1', '10.77.0.150'], { timeoutMs: 5000 });
        t.match(stray.stdout, /1 packets transmitted, 0 received/, 'ping to an address that is not a VIP: no reply');

        // The path f1 <- VIP has MTU 1280; before any transfer the backend knows nothing of it.
        const backAddr = mode === 'dsr' ? vip : lab.addr.backends[0]!;
        const before = lab.exec('b1', ['ip', 'route', 'get', F1, 'from', backAddr]).stdout;
        t.notMatch(before, /mtu 1280/, `b1 has no PMTU for ${F1} yet: ${before.trim()}`);

        const url = `http://${vip}:${XFER_PORT}/`;
        const down = xfer(lab, 'f1', 'GET', `${url}${DOWNLOAD}`, 0);
        t.ok(down.ok, `f1 downloads ${DOWNLOAD} bytes through vipgate over the 1280-byte hop (${down.ms} ms): ${down.out}`);
        t.equal(down.out, String(DOWNLOAD), 'every byte arrived');
        const after = lab.exec('b1', ['ip', 'route', 'get', F1, 'from', backAddr]).stdout;
        t.match(after, /mtu 1280/, `b1's kernel learned the path MTU from the ICMP error vipgate carried: ${after.trim()}`);
        const up = xfer(lab, 'f1', 'POST', url, UPLOAD);
        t.ok(up.ok, `f1 uploads ${UPLOAD} bytes (${up.ms} ms): ${up.out}`);
        t.equal(up.out, String(UPLOAD), 'the backend read every byte');

        if (mode === 'nat') {
          addContainer(lab);
          await startXferServer(lab, 'f2');
          const f1Before = lab.exec('f1', ['ip', 'route', 'get', vip]).stdout;
          t.notMatch(f1Before, /mtu 1280/, `f1 has no PMTU toward ${vip} yet: ${f1Before.trim()}`);
          const purl = `http://${vip}:${PUBLISHED_PORT}/`;
          const cup = xfer(lab, 'f1', 'POST', purl, UPLOAD);
          t.ok(cup.ok, `f1 uploads ${UPLOAD} bytes to the published port, over b1's 1280-byte hop (${cup.ms} ms): ${cup.out}`);
          t.equal(cup.out, String(UPLOAD), 'the container read every byte');
          const f1After = lab.exec('f1', ['ip', 'route', 'get', vip]).stdout;
          t.match(f1After, /mtu 1280/, `f1's kernel learned the path MTU from b1's error, rewritten by vipgate: ${f1After.trim()}`);
          const cdown = xfer(lab, 'f1', 'GET', `${purl}${DOWNLOAD}`, 0);
          t.equal(cdown.out, String(DOWNLOAD), `and downloads ${DOWNLOAD} bytes from it over r1's hop (${cdown.ms} ms)`);
        }

        // The rate limit, live: SIGHUP with 10 replies/s and a burst of 5, then 40 pings 5 ms
        // apart. Every request reaches vipgate; those over the limit are counted, not answered.
        let limited = 0;
        if (mode === 'dsr') {
          fs.writeFileSync(vg.configFile, labConfigYaml(lab, 'icmp: { echo_rate: 10/s, echo_burst: 5 }'));
          vg.signal('SIGHUP');
          for (let i = 0; i < 100 && !/~ icmp echo on, 1000\/s, burst 50 -> echo on, 10\/s, burst 5/.test(vg.log()); i++) await new Promise((r) => setTimeout(r, 50));
          t.match(vg.log(), /~ icmp echo on, 1000\/s, burst 50 -> echo on, 10\/s, burst 5/, 'SIGHUP: the reload logs the new limit');
          const flood = lab.exec('c1', ['ping', '-c', '40', '-i', '0.005', '-W', '1', vip], { timeoutMs: 20_000 });
          const m = /40 packets transmitted, (\d+) received/.exec(flood.stdout);
          const got = m ? Number(m[1]) : -1;
          t.ok(got >= 5 && got <= 30, `40 pings in ~0.2 s: ${got} answered (the burst of 5 and 10/s after it; up to 30 if ping took 2.5 s on a loaded machine)`);
          limited = 40 - got;
        }

        const stop = await vg.stop();
        vg = null;
        t.equal(stop.code, 0, 'vipgate exits 0');
        const c = stop.status!;
        t.equal(c.counters.icmp_echo_replies, 6 + (mode === 'dsr' ? 40 - limited : 0), `icmp_echo_replies ${c.counters.icmp_echo_replies}: every ping answered but those over the limit`);
        t.equal(c.drops.icmp_rate_limited, limited, `icmp_rate_limited ${c.drops.icmp_rate_limited}: the pings that got no answer`);
        t.ok(c.counters.icmp_errors_to_backend >= 1, `icmp_errors_to_backend ${c.counters.icmp_errors_to_backend}: r1's "fragmentation needed" went to b1`);
        if (mode === 'nat') t.ok(c.counters.icmp_errors_to_client >= 1, `icmp_errors_to_client ${c.counters.icmp_errors_to_client}: b1's "fragmentation needed" went back to f1`);
        t.equal(c.drops.icmp_bad_checksum + c.drops.icmp_bad_quote, 0, 'no ICMP was malformed');
        t.equal(c.drops.internal_error, 0, 'no internal errors');
        t.equal(c.counters.frames_in, c.counters.frames_out + Object.values(c.drops).reduce((x, y) => x + y, 0), 'frames_in = frames_out + drops');
      } finally {
        if (vg) await vg.stop();
        if (lab) {
          lab.teardown();
          const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`${lab!.prefix}-`));
          t.same(left, [], 'teardown removed every namespace, the added router and hosts included');
        }
      }
    });
  }
}

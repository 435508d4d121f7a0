// vipgate live on a real NIC in the namespace lab, against real peers: the Linux kernel's own
// ARP and TCP on the clients and backends, the lab's ARP probe, and real HTTP servers. Needs root and
// network namespaces (CI runs as root); skipped with the reason otherwise. Every case runs over
// both packet I/O backends (issue 10): native (AF_PACKET ring) and pcap (libpcap).
import t from 'tap';
import { afpacketAvailable } from '../native-bindings/afpacket';
import { arpProbe, createLab, httpLoad, Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, labConfigYaml, VipgateProc } from '../scenarios/lab/vipgate';

const can = canRunVipgateLab();
if (!can.ok) {
  t.plan(0, `skipped: ${can.why}`);
} else {
  for (const io of ['native', 'pcap'] as const) for (const mode of ['dsr', 'nat'] as const) {
    const native = afpacketAvailable();
    if (io === 'native' && !native.ok) {
      t.test(`live ${mode} over ${io}`, (t) => { t.plan(0, `skipped: ${native.why}`); t.end(); });
      continue;
    }
    t.test(`live ${mode} over ${io}: real clients, real kernels, real HTTP servers`, async (t) => {
      let lab: Lab | null = null;
      let vg: VipgateProc | null = null;
      try {
        lab = await createLab({ mode, clients: 2, backends: 3 });
        vg = await startVipgate(lab, labConfigYaml(lab, `io: ${io}`));
        t.ok(vg.logRecords().some((r) => r.event === 'io' && r.io === io), `vipgate says it runs on ${io}`);
        const [vip1, vip2] = lab.addr.vips as [string, string];

        // ARP: the client kernel resolves each VIP to vipgate's MAC; one reply per request.
        for (const vip of [vip1, vip2]) {
          const a = await arpProbe(lab, 'c1', vip, 3);
          t.same(a.perRequest, [1, 1, 1], `ARP for ${vip}: 3 requests, exactly one reply to each`);
          t.same(a.macs, [lab.mac.vipgate.toLowerCase()], `ARP for ${vip}: replies carry vipgate's MAC`);
        }
        const N = 1000;
        // IP mode: every port of VIP 1 goes to web1. Port mode: VIP 2:80 goes to its active web2.
        const cases: Array<[string, string, string]> = [
          ['c1', `http://${vip1}/`, lab.backendNames[0]!],
          ['c2', `http://${vip2}/`, lab.backendNames[1]!],
        ];
        const results = await Promise.all(cases.map(([ns, url]) => httpLoad(lab!, ns, url, N, { concurrency: 8, timeoutMs: 5000 })));
        cases.forEach(([ns, url, want], i) => {
          const r = results[i]!;
          t.equal(r.failed, 0, `${ns} -> ${url}: ${N} requests on fresh connections, none failed ${r.errors.join(', ')}`);
          t.same(Object.keys(r.byBody), [want], `${url}: every answer came from ${want}`);
        });
        // (the ARP probe uses a packet socket; the kernel's neighbour entry comes from its own TCP above)
        for (const [ns, vip] of [['c1', vip1], ['c2', vip2]] as const) {
          const neigh = lab.exec(ns, ['ip', 'neigh', 'show', vip]).stdout;
          t.match(neigh.toLowerCase(), lab.mac.vipgate.toLowerCase(), `${ns}'s kernel has ${vip} at vipgate's MAC: ${neigh.trim()}`);
        }

        // An address that is not a VIP: vipgate does not answer ARP for it, and TCP gets nowhere.
        const stray = '10.77.0.150';
        const a = await arpProbe(lab, 'c1', stray, 2);
        t.equal(a.replies, 0, `ARP for ${stray} (not a VIP): no reply`);
        const s = await httpLoad(lab, 'c1', `http://${stray}/`, 2, { concurrency: 2, timeoutMs: 1500 });
        t.same([s.ok, s.failed], [0, 2], `HTTP to ${stray} gets no answer`);

        const seen = vg.status();
        const stop = await vg.stop();
        vg = null;
        t.equal(stop.code, 0, 'SIGTERM: vipgate exits 0');
        t.match(stop.log, /vipgate stopped; counters:/, 'and prints its counters');
        const c = stop.status!;
        t.ok(seen && c, 'status file written');
        // vipgate's own counters agree with what the clients saw.
        const conns = 2 * N;
        t.equal(c.counters.flows_created, conns, `flows_created = ${conns} connections the clients opened`);
        t.ok(c.counters.arp_replies >= 6, `arp_replies ${c.counters.arp_replies} >= the 6 probe requests`);
        t.equal(c.counters.frames_in, c.counters.frames_out + Object.values(c.drops).reduce((x, y) => x + y, 0), 'frames_in = frames_out + drops');
        t.equal(c.drops.internal_error, 0, 'no internal errors');
        t.equal(c.counters.tx_errors, 0, 'no send errors');
        if (mode === 'nat') t.ok(c.counters.forwarded_to_client >= 3 * conns, `nat: replies rewritten back (${c.counters.forwarded_to_client})`);
        else t.equal(c.counters.forwarded_to_client, 0, 'dsr: replies never pass vipgate');
        t.ok(c.counters.garp_sent >= 2 * lab.addr.vips.length, `gratuitous ARP sent at start (${c.counters.garp_sent})`);
        const ruleset = lab.exec('vg', ['nft', 'list', 'tables']).stdout;
        t.notMatch(ruleset, /vipgate_/, 'the nftables table is gone after exit');
      } finally {
        if (vg) await vg.stop();
        lab?.teardown();
      }
    });
  }
}

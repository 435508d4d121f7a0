// The packet I/O binding's error paths, each in a namespace lab against a real kernel (issue 10):
// an interface that does not exist, no CAP_NET_RAW, the interface going down and up mid-run, a
// frame larger than the ring slot, and the ring overflowing. Each must end in a clear error or a
// counted drop, never a crash. The NIC is driven by scenarios/lab/nic-probe.ts (the real link,
// pump and packet path) in the vipgate host's namespace; traffic is the client kernel's ping.
// Needs root and network namespaces; the native cases need the addon. Skipped with the reason.

import t from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createLab, canRunLab, type Lab } from '../scenarios/lab/lab';
import { afpacketAvailable } from '../native-bindings/afpacket';
import { arp, vlan } from './helpers/frames';

const probe = path.resolve(__dirname, '..', 'scenarios', 'lab', 'nic-probe.js');

interface ProbeRun {
  events: Array<Record<string, unknown>>;
  code: number | null;
  stderr: string;
}

/** Run the probe in the vipgate namespace (argv prefix e.g. setpriv); `during` runs once it prints the `trigger` event. */
function runProbe(lab: Lab, opts: Record<string, unknown>, during: (events: Array<Record<string, unknown>>) => Promise<void> = async () => {}, prefix: string[] = [], trigger = 'ready'): Promise<ProbeRun> {
  return runProbeIn(lab, 'vg', opts, during, prefix, trigger);
}

function runProbeIn(lab: Lab, ns: string, opts: Record<string, unknown>, during: (events: Array<Record<string, unknown>>) => Promise<void> = async () => {}, prefix: string[] = [], trigger = 'ready'): Promise<ProbeRun> {
  return new Promise((resolve, reject) => {
    const child = lab.spawn(ns, [...prefix, process.execPath, probe, JSON.stringify({ durationMs: 30_000, ...opts })]);
    const events: Array<Record<string, unknown>> = [];
    let buf = '', stderr = '', started = false;
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        try { events.push(JSON.parse(line) as Record<string, unknown>); } catch { stderr += `(not JSON) ${line}\n`; }
        const last = events[events.length - 1];
        if (last?.event === trigger && !started) {
          started = true;
          during(events).then(() => { child.kill('SIGTERM'); }, (e) => { child.kill('SIGTERM'); reject(e); });
        }
      }
    });
    child.on('close', (code) => resolve({ events, code, stderr }));
  });
}

const lastStats = (r: ProbeRun) => [...r.events].reverse().find((e) => e.event === 'stats') as
  { counters: Record<string, number>; drops: Record<string, number>; nic: { ringDrops: number; linkErrors: number; lastLinkError: string | null } } | undefined;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const can = canRunLab();
const native = afpacketAvailable();
const hasSetpriv = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

if (!can.ok) {
  t.plan(0, `skipped: ${can.why}`);
} else {
  let lab: Lab;
  t.before(async () => { lab = await createLab({ mode: 'dsr', clients: 1, backends: 1 }); });
  t.teardown(() => lab?.teardown());

  for (const io of ['native', 'pcap'] as const) {
    const skip = io === 'native' && !native.ok ? `skipped: ${native.ok ? '' : native.why}` : false;

    t.test(`${io}: an interface that does not exist is a clear error naming it`, { skip }, async (t) => {
      const r = await runProbe(lab, { iface: 'nope0', io });
      t.equal(r.code, 3, 'exits with the probe\'s open-failed status, not a crash');
      const e = r.events[0]!;
      t.equal(e.code, 'ENIC_NOT_FOUND', `code ENIC_NOT_FOUND (${e.message})`);
      t.match(String(e.message), 'nope0', 'the message names the interface');
    });

    t.test(`${io}: without CAP_NET_RAW the error says what capability to give`, { skip: skip || (!hasSetpriv && 'skipped: setpriv (util-linux) is not installed') }, async (t) => {
      const r = await runProbe(lab, { iface: 'eth0', io }, async () => {}, ['setpriv', '--inh-caps=-all', '--bounding-set=-net_raw']);
      t.equal(r.code, 3, `exits with the open-failed status, not a crash ${r.stderr}`);
      const e = r.events[0]!;
      t.equal(e.code, 'ENIC_PERMISSION', `code ENIC_PERMISSION (${e.message})`);
      t.match(String(e.message), 'CAP_NET_RAW', 'the message names CAP_NET_RAW');
    });
  }

  t.test('802.1Q and QinQ: tagged frames keep their tags both ways (the kernel strips the outer tag into metadata; native puts it back, as libpcap does)', async (t) => {
    // The probe in vg runs the packet path for VIP 10.99.0.1 and answers ARP in place, tags and
    // all. A raw probe in c1 sends a tagged who-has and prints what comes back: the reply must
    // carry the same tags, so the tags survived vg's receive, the packet path and its send (and
    // c1's receive, through the same backend).
    const C1 = lab.mac.clients[0]!, PROBE_MAC = '02:00:5e:00:00:99';
    const cases = [
      { d: '802.1Q vid 100', vlans: [vlan(100)], tags: '81000064' },
      { d: 'QinQ 802.1ad vid 200, 802.1Q vid 100', vlans: [vlan(200, 0x88a8), vlan(100)], tags: '88a800c881000064' },
    ];
    for (const io of ['native', 'pcap'] as const) {
      if (io === 'native' && !native.ok) { t.comment(`native skipped: ${native.why}`); continue; }
      for (const c of cases) {
        const who = arp({ src: C1, senderIp: '10.99.0.7', targetIp: '10.99.0.1', vlans: c.vlans, pad: true }).toString('hex');
        let got: ProbeRun | null = null;
        const r = await runProbe(lab, { iface: 'eth0', io }, async () => {
          // Listen 2 s once ready (the probe is stopped when this returns): the request goes out up
          // to three times, 300 ms apart, and libpcap may hold a reply until its block timer fires.
          got = await runProbeIn(lab, 'c1', { iface: 'eth0', io, raw: true, send: [who], sendRepeat: 3, durationMs: 10_000, filter: `ether src ${PROBE_MAC}` }, () => sleep(2000));
        });
        t.equal(r.code, 0, `${io} ${c.d}: the responder did not crash ${r.stderr}`);
        const replies = (got as ProbeRun | null)?.events.filter((e) => e.event === 'frame').map((e) => String(e.hex)) ?? [];
        const want = C1.replace(/:/g, '') + PROBE_MAC.replace(/:/g, '') + c.tags + '0806';
        t.ok(replies.some((h) => h.startsWith(want) && h.slice(want.length + 12, want.length + 16) === '0002'),
          `${io} ${c.d}: the ARP reply came back with the tags ${c.tags} (got ${replies.map((h) => h.slice(0, want.length + 16)).join(', ') || 'nothing'})`);
      }
    }
  });

  t.test('a frame the NIC refuses (larger than the MTU) is a failed send with its reason, not a throw', async (t) => {
    for (const io of ['native', 'pcap'] as const) {
      if (io === 'native' && !native.ok) { t.comment(`native skipped: ${native.why}`); continue; }
      const big = Buffer.alloc(3000, 0xab);
      Buffer.from(lab.mac.backends[0]!.replace(/:/g, '') + lab.mac.clients[0]!.replace(/:/g, '') + '0800', 'hex').copy(big);
      const r = await runProbeIn(lab, 'c1', { iface: 'eth0', io, raw: true, send: [big.toString('hex')], durationMs: 10_000 }, () => sleep(300));
      t.equal(r.code, 0, `${io}: no crash ${r.stderr}`);
      const sent = r.events.find((e) => e.event === 'sent');
      t.equal(sent?.ok, false, `${io}: the send failed`);
      if (io === 'native') t.match(String(sent?.error), 'EMSGSIZE', `native: and says why (${sent?.error})`);
      else t.ok(String(sent?.error).length > 0, `pcap: and says why (${sent?.error})`);
    }
  });

  t.test('native: the interface going down and up mid-run is counted, and frames flow again', { skip: !native.ok && `skipped: ${native.ok ? '' : native.why}` }, async (t) => {
    const r = await runProbe(lab, { iface: 'eth0', io: 'native', statsMs: 100 }, async () => {
      lab.exec('c1', ['ping', '-c', '5', '-i', '0.05', '-W', '1', lab.addr.vipgate]);
      await sleep(300);
      lab.exec('vg', ['ip', 'link', 'set', 'eth0', 'down']);
      await sleep(500);
      lab.exec('vg', ['ip', 'link', 'set', 'eth0', 'up']);
      await sleep(1500);
      const p = lab.exec('c1', ['ping', '-c', '5', '-i', '0.05', '-W', '1', lab.addr.vipgate]);
      t.match(p.stdout, / 0% packet loss/, 'the host answers pings again after the interface is back up');
      await sleep(300);
    });
    t.equal(r.code, 0, `the process survives and exits 0 on SIGTERM ${r.stderr}`);
    const stats = r.events.filter((e) => e.event === 'stats') as Array<{ counters: Record<string, number>; nic: { linkErrors: number; lastLinkError: string | null } }>;
    const down = stats.findIndex((s) => s.nic.linkErrors > 0);
    t.ok(down >= 0, `the link error is counted (${JSON.stringify(stats[stats.length - 1]?.nic)})`);
    if (down >= 0) {
      t.match(String(stats[down]!.nic.lastLinkError), 'ENETDOWN', 'and named: ENETDOWN (the interface is down)');
      const before = stats[down]!.counters.frames_in!;
      const end = lastStats(r)!;
      t.ok(end.counters.frames_in! >= before + 5, `frames received after the interface came back (${before} -> ${end.counters.frames_in})`);
    }
  });

  t.test('native: a socket handed to another process keeps its ring: what arrived in between is processed by the new owner', { skip: !native.ok && `skipped: ${native.ok ? '' : native.why}` }, async (t) => {
    // A supervisor's hand-over to a packet worker (DESIGN.md): the first probe opens the socket,
    // nobody reads it for 2 s while the client pings, then a second probe attaches to the
    // inherited fd.
    const r = await runProbe(lab, { iface: 'eth0', io: 'native', handoff: true, handoffGapMs: 2000 }, async (events) => {
      lab.exec('c1', ['ping', '-c', '5', '-i', '0.05', '-W', '1', lab.addr.vipgate]);
      for (let i = 0; i < 200 && !events.some((e) => e.event === 'ready'); i++) await sleep(50);
      await sleep(300);
      lab.exec('c1', ['ping', '-c', '5', '-i', '0.05', '-W', '1', lab.addr.vipgate]);
      await sleep(300);
    }, [], 'handing-off');
    t.equal(r.code, 0, `both owners exit cleanly ${r.stderr}`);
    t.ok(r.events.some((e) => e.event === 'ready'), 'the second owner attached to the inherited socket');
    const s = lastStats(r);
    t.ok(s && s.counters.frames_in! >= 10, `the pings sent before it attached and after were all processed by it (frames_in ${s?.counters.frames_in})`);
    t.equal(s?.nic.ringDrops, 0, 'nothing dropped');
  });

  t.test('native: a frame larger than the ring slot is a counted drop (frame_too_large)', { skip: !native.ok && `skipped: ${native.ok ? '' : native.why}` }, async (t) => {
    const r = await runProbe(lab, { iface: 'eth0', io: 'native', frameSize: 256 }, async () => {
      lab.exec('c1', ['ping', '-c', '3', '-i', '0.05', '-s', '1000', '-W', '1', lab.addr.vipgate]);
      await sleep(300);
    });
    t.equal(r.code, 0, `no crash ${r.stderr}`);
    const s = lastStats(r)!;
    t.ok(s.drops.frame_too_large! >= 3, `the 3 pings of 1042-byte frames are counted as frame_too_large (${s.drops.frame_too_large})`);
    t.equal(s.counters.frames_in, s.counters.frames_out! + Object.values(s.drops).reduce((a, b) => a + b, 0), 'frames_in = frames_out + drops');
    t.equal(s.drops.internal_error, 0, 'no internal error');
  });

  t.test('native: an overflowing ring is a counted drop (rx_ring_drops), then frames flow again', { skip: !native.ok && `skipped: ${native.ok ? '' : native.why}` }, async (t) => {
    // 64 slots, not read for 2.5 s while the client floods (from 0.8 s, once the socket is open):
    // the kernel drops what does not fit.
    const flood = setTimeout(() => { lab.exec('c1', ['ping', '-f', '-c', '1000', '-W', '1', lab.addr.vipgate]); }, 800);
    const r = await runProbe(lab, { iface: 'eth0', io: 'native', bufferSize: 64 * 2048, startDelayMs: 2500 }, async () => {
      await sleep(300);
      lab.exec('c1', ['ping', '-c', '5', '-i', '0.05', '-W', '1', lab.addr.vipgate]);
      await sleep(300);
    });
    clearTimeout(flood);
    t.equal(r.code, 0, `no crash ${r.stderr}`);
    const s = lastStats(r)!;
    t.ok(s.nic.ringDrops > 0 && s.counters.rx_ring_drops === s.nic.ringDrops, `ring drops counted: ${s.counters.rx_ring_drops}`);
    t.ok(s.counters.frames_in! >= 64, `the ring's 64 frames and the later pings were processed (${s.counters.frames_in})`);
  });
}

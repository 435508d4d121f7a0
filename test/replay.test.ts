// `vipgate replay` over real captures written by other people's software (../shared/pcaps),
// with configs that put vipgate in the place of a host of the capture, and over every capture
// with the example configs. Expected counts come from tshark's expect/*.json where they can.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runReplay, ReplayReport } from '../src/cli/replay';
import { readCaptureFile, PcapWriter } from '../src/pcap';
import { parseEthernet } from '../src/wire/ethernet';
import { parseArp } from '../src/wire/arp';
import { emitIpv4 } from '../src/wire/ipv4';
import { ipOf as ip, tcpOk } from './helpers/inspect';
import { tcpChecksum } from '../src/wire/tcp';
import { parseIpv4, parseMac } from '../src/wire/addr';
import { macCopy, setU16 } from '../src/wire/bytes';
import { checksum } from '../src/wire/checksum';
import { COUNTER_NAMES } from '../src/dataplane/counters';
import { icmp, ipDatagram, tcp } from './helpers/frames';
import { parseIcmp, IcmpRepr, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_DEST_UNREACH } from '../src/wire/icmp';

const repo = path.resolve(__dirname, '..', '..');
const pcaps = path.join(repo, '..', 'shared', 'pcaps');
const configs = path.join(repo, 'scenarios', 'configs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-replay-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const expectOf = (f: string) => JSON.parse(fs.readFileSync(path.join(pcaps, 'expect', f + '.json'), 'utf8'));
let n = 0;
function cfg(yaml: string): string {
  const p = path.join(tmp, `c${++n}.yaml`);
  fs.writeFileSync(p, yaml);
  return p;
}
function replay(config: string, input: string, extra: Partial<Parameters<typeof runReplay>[0]> = {}): { r: ReplayReport; out: ReturnType<typeof readCaptureFile> } {
  const out = path.join(tmp, `o${++n}.pcap`);
  const r = runReplay({ config, input, out, allowTruncated: false, ...extra });
  return { r, out: readCaptureFile(out) };
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
interface Asserts { equal: (...a: any[]) => unknown }
function invariant(t: Asserts, r: ReplayReport) {
  t.equal(r.frames_in, r.frames_out + r.drops_total, 'every frame counted once: frames_in = frames_out + drops');
  t.equal(r.drops.internal_error, 0, 'no internal errors');
}

const ALL = fs.readdirSync(pcaps).filter((f) => /\.pcap(ng)?$/.test(f)).sort();

t.test('every shared capture replays without a crash, in dsr and nat', async (t) => {
  t.ok(ALL.length >= 25, `${ALL.length} captures`);
  for (const file of ALL) {
    const exp = expectOf(file);
    for (const mode of ['dsr', 'nat']) {
      const config = path.join(configs, `replay-${mode}.yaml`);
      const input = path.join(pcaps, file);
      try {
        const { r, out } = replay(config, input);
        t.equal(r.frames_in + r.skipped_not_ethernet, exp.frames, `${file} ${mode}: all ${exp.frames} frames seen`);
        invariant(t, r);
        t.equal(out.frames.length, r.frames_out, `${file} ${mode}: output holds what was transmitted`);
      } catch (e) {
        const code = (e as { code?: string }).code;
        const msg = (e as Error).message;
        const known: Record<string, string> = {
          'pcapparser-malformed.pcap': 'ECAPTURE_NOT_A_CAPTURE',
          'dpkt-truncated_dns_2.pcap': 'ECAPTURE_TRUNCATED',
          'tcpdump-tcp-handshake-nano.pcap': 'EREPLAY_LINKTYPE',
        };
        t.equal(code, known[file], `${file} ${mode}: a clear error (${msg})`);
        t.match(msg, file, 'the message names the file');
      }
    }
  }
});

t.test('a cut-off capture replays up to the cut with allowTruncated', async (t) => {
  const { r } = replay(path.join(configs, 'replay-dsr.yaml'), path.join(pcaps, 'dpkt-truncated_dns_2.pcap'), { allowTruncated: true });
  t.equal(r.frames_in, 1);
  t.match(r.input_truncated, /7 of 16 bytes/);
});

t.test('ARP: vipgate in the place of 192.168.0.1 (cs-ppa2e-arp_resolution)', async (t) => {
  const c = cfg(`mac: "02:00:5e:00:00:01"\nvips: [192.168.0.1]\nbackends: []\nservices: []\n`);
  const { r, out } = replay(c, path.join(pcaps, 'cs-ppa2e-arp_resolution.pcap'));
  invariant(t, r);
  t.equal(r.arp_replies, 1, 'the request "who-has 192.168.0.1 tell 192.168.0.114" is answered');
  t.equal(r.drops.arp_conflict, 1, 'the real host\'s reply claiming 192.168.0.1 is a conflict');
  const f = out.frames[0]!.data;
  const e = parseEthernet(f)!;
  t.same([e.dst, e.src], ['00:16:ce:6e:8b:24', '02:00:5e:00:00:01']);
  t.match(parseArp(f, e.l3, f.length - e.l3), { oper: 2, senderMac: '02:00:5e:00:00:01', senderIp: '192.168.0.1', targetMac: '00:16:ce:6e:8b:24', targetIp: '192.168.0.114' });
  t.equal(out.frames[0]!.tsMs, readCaptureFile(path.join(pcaps, 'cs-ppa2e-arp_resolution.pcap')).frames[0]!.tsMs, 'sent at the request\'s time');
});

t.test('ARP over QinQ (tcpdump-802.1ad_QinQ): the reply keeps S-tag 200 and C-tag 2001', async (t) => {
  const c = cfg(`mac: "02:00:5e:00:00:01"\nvips: [172.21.79.100]\nbackends: []\nservices: []\n`);
  const { r, out } = replay(c, path.join(pcaps, 'tcpdump-802.1ad_QinQ.pcap'));
  invariant(t, r);
  t.equal(r.arp_replies, 1);
  t.equal(r.drops.arp_conflict, 1, 'the real owner\'s reply is a conflict');
  const e = parseEthernet(out.frames[0]!.data)!;
  t.same(e.vlans.map((v) => [v.tpid, v.vid]), [[0x88a8, 200], [0x8100, 2001]]);
  t.equal(e.dst, '00:20:d2:5a:fb:3f');
});

t.test('gratuitous ARP from another host for our VIP is a conflict (cs-ppa2e-arp_gratuitous)', async (t) => {
  const c = cfg(`mac: "02:00:5e:00:00:01"\nvips: [24.6.125.19]\nbackends: []\nservices: []\n`);
  const { r } = replay(c, path.join(pcaps, 'cs-ppa2e-arp_gratuitous.pcap'));
  t.same([r.drops.arp_conflict, r.arp_replies, r.frames_out], [1, 0, 0]);
});

t.test('evilprogram: answering for 24.6.125.19 on a real cable-modem LAN', async (t) => {
  const file = 'cs-ppa1e-evilprogram.pcap';
  const exp = expectOf(file);
  type Req = { sender_ip: string; target_ip: string };
  const fromRouter = exp.arp_request_list.filter((a: Req) => a.target_ip === '24.6.125.19' && a.sender_ip !== '24.6.125.19').length;
  const fromHost = exp.arp_request_list.filter((a: Req) => a.sender_ip === '24.6.125.19').length;
  // In the host's place (its MAC): the router's cache refreshes are unicast to that MAC, and answered.
  const asHost = replay(cfg(`mac: "00:03:47:b7:f2:f5"\nvips: [24.6.125.19]\nbackends: []\nservices: []\n`), path.join(pcaps, file)).r;
  invariant(t, asHost);
  t.equal(asHost.arp_replies, fromRouter, `${fromRouter} requests from the router for 24.6.125.19 answered`);
  t.equal(asHost.counters.arp_requests_seen, exp.arp_requests - fromHost, 'requests seen = tshark arp_requests less the host\'s own');
  // With another MAC: those unicast refreshes are not for us, and the real host's ARPs from the VIP are conflicts.
  const other = replay(cfg(`mac: "02:00:5e:00:00:01"\nvips: [24.6.125.19]\nbackends: []\nservices: []\n`), path.join(pcaps, file)).r;
  invariant(t, other);
  t.equal(other.arp_replies, 0);
  t.equal(other.counters.arp_requests_seen, exp.arp_requests, 'requests seen = tshark arp_requests');
  t.ok(other.drops.arp_conflict >= fromHost, `the host's ${fromHost} ARPs from 24.6.125.19 are conflicts (${other.drops.arp_conflict} with its replies)`);
});

const GOPACKET = 'gopacket-test_ethernet.pcap';
const gopacketCfg = (mode: string, mac = 'c4:39:3a:02:a9:2a') => cfg(`mac: "${mac}"\nmode: ${mode}\nvips: [10.1.1.1]\nbackends:\n  - { name: web1, ip: 10.1.1.21, mac: "02:00:00:00:01:21" }\nservices:\n  - { vip: 10.1.1.1, port: 80, active: web1 }\n`);

t.test('dsr with a real HTTP exchange (gopacket test_ethernet): vipgate as 10.1.1.1', async (t) => {
  const input = path.join(pcaps, GOPACKET);
  const orig = readCaptureFile(input).frames;
  const { r, out } = replay(gopacketCfg('dsr'), input);
  invariant(t, r);
  t.same([r.flows_created, r.forwarded, r.frames_out], [1, 5, 5], 'the client\'s 5 segments go to web1');
  t.equal(r.drops.own_frame, 5, 'the original server\'s frames carry our MAC as source: own frames');
  const clientFrames = orig.filter((f) => parseEthernet(f.data)!.src === '58:6d:8f:99:ec:a8');
  out.frames.forEach((f, i) => {
    const e = parseEthernet(f.data)!;
    t.same([e.dst, e.src], ['02:00:00:00:01:21', 'c4:39:3a:02:a9:2a'], `frame ${i + 1} MACs`);
    t.same(f.data.subarray(12), clientFrames[i]!.data.subarray(12), `frame ${i + 1}: dsr changes nothing past the MACs`);
  });
});

t.test('nat round trip on real bytes: client -> VIP -> web1 and web1 -> client from the VIP', async (t) => {
  // Make the capture a nat one: the client's frames go to vipgate's MAC; the server's frames
  // come from web1 (10.1.1.21, its MAC) to vipgate's MAC, IP and TCP checksums recomputed.
  const src = readCaptureFile(path.join(pcaps, GOPACKET));
  const w = new PcapWriter();
  const ours = parseMac('02:00:5e:00:00:01')!, web1 = parseMac('02:00:00:00:01:21')!;
  const serverFrames: Buffer[] = [];
  for (const f of src.frames) {
    const d = Buffer.from(f.data);
    const e = parseEthernet(d)!;
    if (e.src === 'c4:39:3a:02:a9:2a') {
      serverFrames.push(Buffer.from(d));
      const i = ip(d);
      macCopy(d, 6, web1, 0);
      emitIpv4({ ...i, fragOffset: i.fragOffset, src: '10.1.1.21', totalLength: i.totalLength, protocol: i.protocol }, d, e.l3);
      setU16(d, e.l3 + i.ihl + 16, tcpChecksum(d, e.l3 + i.ihl, i.totalLength - i.ihl, parseIpv4('10.1.1.21')!, parseIpv4(i.dst)!));
    }
    macCopy(d, 0, ours, 0);
    w.add(d, 0, d.length, f.tsMs);
  }
  const input = path.join(tmp, 'gopacket-nat-in.pcap');
  w.writeFile(input);
  const { r, out } = replay(gopacketCfg('nat', '02:00:5e:00:00:01'), input);
  invariant(t, r);
  t.same([r.frames_out, r.counters.forwarded_to_backend, r.counters.forwarded_to_client], [10, 5, 5]);
  let back = 0;
  for (const f of out.frames) {
    const d = f.data, i = ip(d), e = parseEthernet(d)!;
    t.ok(i.checksumOk && tcpOk(d), `${i.src} > ${i.dst}: IP and TCP checksums verify`);
    if (i.src === '10.1.1.1') {
      const o = serverFrames[back++]!;
      t.same([e.dst, e.src], ['58:6d:8f:99:ec:a8', '02:00:5e:00:00:01'], 'to the client\'s MAC');
      t.equal(i.ttl, ip(o).ttl - 1, 'TTL decremented once');
      // Past the IP header the reply is byte-for-byte what the real server sent.
      t.same(d.subarray(e.l3 + 20), o.subarray(e.l3 + 20), 'TCP header and payload identical to the original server\'s');
    } else {
      t.same([i.dst, e.dst], ['10.1.1.21', '02:00:00:00:01:21'], 'client segment to web1');
    }
  }
  t.equal(back, 5);
});

t.test('nmap SYN scan (cs-ppa2e-synscan): only ports with a service are steered, counts match tshark', async (t) => {
  const file = 'cs-ppa2e-synscan.pcap';
  const exp = expectOf(file);
  const c = cfg(`mac: "00:26:0b:31:07:33"
vips: [64.13.134.52]
backends:
  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }
  - { name: web2, ip: 10.0.1.22, mac: "02:00:00:00:01:22" }
services:
  - { vip: 64.13.134.52, port: 80, active: web1, standby: [web2] }
  - { vip: 64.13.134.52, port: 22, active: web2 }
  - { vip: 64.13.134.52, port: 53, active: web2 }
`);
  const { r } = replay(c, path.join(pcaps, file));
  invariant(t, r);
  const to = (p: number) => exp.tcp_syn_dst_counts[`64.13.134.52:${p}`] ?? 0;
  const steered = to(80) + to(22) + to(53);
  t.equal(r.forwarded, steered, `${steered} SYNs to 22/53/80 forwarded`);
  t.equal(r.drops.no_service, exp.tcp_syn - steered, 'every other SYN: no_service');
  t.equal(r.drops.own_frame, exp.frames - exp.tcp_syn, 'the target\'s answers come from our MAC: own frames');
});

t.test('real handshake (cs-ppa2e-tcp_handshake): SYN and ACK follow the flow', async (t) => {
  const c = cfg(`mac: "00:05:5d:21:99:4c"\nvips: [212.58.226.142]\nbackends:\n  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }\nservices:\n  - { vip: 212.58.226.142, backend: web1 }\n`);
  const { r } = replay(c, path.join(pcaps, 'cs-ppa2e-tcp_handshake.pcap'));
  t.same([r.flows_created, r.forwarded, r.drops.own_frame], [1, 2, 1]);
  // A teardown whose SYN vipgate never saw (the capture starts mid-connection): not forwarded.
  const c2 = cfg(`mac: "00:05:5d:21:99:4c"\nvips: [67.228.110.120]\nbackends:\n  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }\nservices:\n  - { vip: 67.228.110.120, backend: web1 }\n`);
  const { r: td } = replay(c2, path.join(pcaps, 'cs-ppa2e-tcp_teardown.pcap'));
  t.same([td.drops.unknown_flow, td.drops.own_frame, td.frames_out], [2, 2, 0], 'cs-ppa2e-tcp_teardown: the client\'s ACK and FIN have no flow');
});

t.test('VLAN-tagged established segment with no flow (packetnet 802.1q): unknown_flow', async (t) => {
  const c = cfg(`mac: "00:1b:21:c6:42:6e"\nvips: [74.125.47.136]\nbackends:\n  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }\nservices:\n  - { vip: 74.125.47.136, backend: web1 }\n`);
  const { r } = replay(c, path.join(pcaps, 'packetnet-802.1q_vlan_ipv4_tcp.pcap'));
  t.same([r.frames_in, r.drops.unknown_flow], [1, 1]);
});

t.test('the command line: JSON report, exit codes, messages', async (t) => {
  const bin = path.join(repo, 'bin', 'vipgate.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  const out = path.join(tmp, 'cli-out.pcap');
  const ok = run('replay', '--json', '--config', path.join(configs, 'replay-dsr.yaml'), '--out', out, path.join(pcaps, 'cs-ppa2e-arp_resolution.pcap'));
  t.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout);
  for (const k of ['frames_in', 'frames_out', 'arp_replies', 'flows_created', 'forwarded', 'drops']) t.ok(k in j, `JSON has ${k}`);
  t.same(Object.keys(j.counters), [...COUNTER_NAMES]);
  // duration_ms is the capture's own time span (its timestamps), replay_ms the wall time here.
  const frames = readCaptureFile(path.join(pcaps, 'cs-ppa2e-arp_resolution.pcap')).frames;
  t.equal(j.duration_ms, frames.at(-1)!.tsMs - frames[0]!.tsMs, 'duration_ms = last timestamp - first timestamp of the capture');
  t.ok(typeof j.replay_ms === 'number' && j.replay_ms >= 0, `replay_ms is how long the replay took (${j.replay_ms} ms)`);
  t.equal(j.frames_out, 0);
  t.ok(fs.existsSync(out) && fs.statSync(out).size === 24, 'output written even when empty (header only)');
  const text = run('replay', '--config', path.join(configs, 'replay-dsr.yaml'), '--out', out, path.join(pcaps, 'cs-ppa1e-evilprogram.pcap'));
  t.match(text.stdout, /frames in\s+659/);
  const cases: Array<[string[], RegExp]> = [
    [['replay', '--config', path.join(configs, 'replay-dsr.yaml'), '--out', out, path.join(pcaps, 'pcapparser-malformed.pcap')], /pcapparser-malformed\.pcap: not a pcap or pcapng capture/],
    [['replay', '--config', path.join(configs, 'replay-dsr.yaml'), '--out', out, path.join(pcaps, 'dpkt-truncated_dns_2.pcap')], /cut short.*\n.*--allow-truncated/],
    [['replay', '--config', path.join(tmp, 'nope.yaml'), '--out', out, path.join(pcaps, GOPACKET)], /nope\.yaml: cannot read config file: no such file/],
    [['replay', '--config', cfg('mode: fast\n'), '--out', out, path.join(pcaps, GOPACKET)], /c\d+\.yaml:1:\d+: .*mode/],
    [['replay', '--out', out], /missing --config FILE, the input capture/],
    [['replay', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['replay', '--config', path.join(configs, 'replay-dsr.yaml'), '--out', path.join(tmp, 'no-such-dir', 'o.pcap'), path.join(pcaps, GOPACKET)], /o\.pcap/],
  ];
  for (const [args, re] of cases) {
    const p = run(...args);
    t.equal(p.status, 2, `exit 2: ${args.join(' ')}`);
    t.match(p.stderr, re, 'says what is wrong');
    t.notMatch(p.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('ICMP in a replay: echo answered (rate-limited on the capture clock), an error about a flow carried, a fragmented ping refused', async (t) => {
  const VIP = '10.1.1.1', CLIENT = '10.1.1.7', CMAC = '02:aa:00:00:00:07', OURS = '02:00:5e:00:00:01';
  const w = new PcapWriter();
  const at = (f: Buffer, ms: number) => w.add(f, 0, f.length, 1_700_000_000_000 + ms);
  // five pings a second apart, then three back to back (burst 2: the third is over the limit)
  for (let s = 0; s < 5; s++) at(icmp({ srcMac: CMAC, dstMac: OURS, src: CLIENT, dst: VIP, icmp: { type: ICMP_ECHO_REQUEST, id: 9, seq: s, data: Buffer.from('0123456789abcdef') } }), s * 1000);
  for (let s = 5; s < 8; s++) at(icmp({ srcMac: CMAC, dstMac: OURS, src: CLIENT, dst: VIP, icmp: { type: ICMP_ECHO_REQUEST, id: 9, seq: s } }), 5000);
  // a connection, and a router's "fragmentation needed" about the backend's reply (dsr: from the VIP)
  at(tcp({ srcMac: CMAC, dstMac: OURS, src: CLIENT, dst: VIP, srcPort: 40000, dstPort: 80, flags: 0x02 }), 6000);
  const reply = tcp({ srcMac: '02:00:00:00:01:21', dstMac: CMAC, src: VIP, dst: CLIENT, srcPort: 80, dstPort: 40000, flags: 0x18, payload: 'x'.repeat(1448) });
  at(icmp({ srcMac: '02:ee:00:00:00:01', dstMac: OURS, src: '10.1.1.254', dst: VIP, icmp: { type: ICMP_DEST_UNREACH, code: 4, nextHopMtu: 1400, data: ipDatagram(reply, 548) } }), 6001);
  const input = path.join(tmp, 'icmp-in.pcap');
  w.writeFile(input);
  const c = cfg(`mac: "${OURS}"\nvips: [${VIP}]\nbackends:\n  - { name: web1, ip: 10.1.1.21, mac: "02:00:00:00:01:21" }\nservices:\n  - { vip: ${VIP}, backend: web1 }\nicmp: { echo_rate: 1/s, echo_burst: 2 }\n`);
  const outFile = path.join(tmp, 'icmp-out.pcap');
  const p = spawnSync(process.execPath, [path.join(repo, 'bin', 'vipgate.js'), 'replay', '--json', '--config', c, '--out', outFile, input], { encoding: 'utf8' });
  t.equal(p.status, 0, p.stderr);
  const r = JSON.parse(p.stdout) as ReplayReport;
  invariant(t, r);
  t.same([r.counters.icmp_echo_replies, r.drops.icmp_rate_limited, r.counters.icmp_errors_to_backend, r.forwarded], [7, 1, 1, 1]);
  const out = readCaptureFile(outFile).frames;
  const replies = out.filter((f) => { const e = parseEthernet(f.data)!; return f.data[e.l3 + 9] === 1 && f.data[e.l3 + 20] === ICMP_ECHO_REPLY; });
  t.equal(replies.length, 7, 'the output capture holds the echo replies');
  for (const f of replies) {
    const e = parseEthernet(f.data)!, i = ip(f.data);
    const m = parseIcmp(f.data, e.l3 + 20, i.totalLength - 20) as IcmpRepr;
    t.ok(i.src === VIP && i.dst === CLIENT && e.dst === CMAC && e.src === OURS && i.checksumOk && m.checksumOk && m.id === 9,
      `seq ${m.seq}: ${i.src} > ${i.dst}: ICMP echo reply, checksums verify`);
  }
  t.same(replies.map((f) => (parseIcmp(f.data, 34, f.data.length - 34) as IcmpRepr).seq), [0, 1, 2, 3, 4, 5, 6], 'seq 7 was over the limit');
  t.equal(replies[0]!.tsMs, 1_700_000_000_000, 'sent at the request\'s time');
  const err = out.find((f) => f.data[34] === ICMP_DEST_UNREACH)!;
  t.equal(parseEthernet(err.data)!.dst, '02:00:00:00:01:21', 'the error went to web1');
  // A second opinion from tcpdump (it verifies IP and ICMP checksums with -v).
  const td = spawnSync('tcpdump', ['-nn', '-v', '-r', outFile, 'icmp'], { encoding: 'utf8' });
  t.test('tcpdump reads the output', { skip: td.error ? 'tcpdump is not installed (apt-get install -y tcpdump)' : false }, async (tt) => {
    tt.equal((td.stdout.match(/10\.1\.1\.1 > 10\.1\.1\.7: ICMP echo reply, id 9, seq \d, length \d+/g) ?? []).length, 7, 'tcpdump reads 7 echo replies');
    tt.match(td.stdout, /10\.1\.1\.254 > 10\.1\.1\.1: ICMP 10\.1\.1\.7 unreachable - need to frag \(mtu 1400\)/, 'and the error, unchanged past the MACs');
    tt.notMatch(td.stdout, /bad cksum|wrong icmp cksum/, 'no checksum tcpdump disagrees with');
  });

  // A real oversized ping (cs-ppa2e-ip_frag_source), vipgate in the place of 192.168.0.128: every
  // fragment is refused (no reassembly), the real host's fragmented reply is our own frame.
  const frag = replay(cfg(`mac: "00:21:29:66:71:95"\nvips: [192.168.0.128]\nbackends: []\nservices: []\n`), path.join(pcaps, 'cs-ppa2e-ip_frag_source.pcap')).r;
  invariant(t, frag);
  t.same([frag.drops.ip_fragment, frag.drops.bad_ip_checksum, frag.drops.own_frame, frag.frames_out], [0, 3, 3, 0],
    'the request\'s fragments carry IP checksum 0 (capture-host offload): bad_ip_checksum before anything else');
  // The same frames with the checksums the wire would have carried: all three are fragments to a VIP.
  const fixed = new PcapWriter();
  for (const f of readCaptureFile(path.join(pcaps, 'cs-ppa2e-ip_frag_source.pcap')).frames) {
    const d = Buffer.from(f.data);
    setU16(d, 24, 0);
    setU16(d, 24, checksum(d, 14, 20));
    fixed.add(d, 0, d.length, f.tsMs);
  }
  const fixedIn = path.join(tmp, 'frag-fixed.pcap');
  fixed.writeFile(fixedIn);
  const ff = replay(cfg(`mac: "00:21:29:66:71:95"\nvips: [192.168.0.128]\nbackends: []\nservices: []\n`), fixedIn).r;
  t.same([ff.drops.ip_fragment, ff.drops.own_frame, ff.frames_out], [3, 3, 0], 'with the checksums fixed: three ip_fragment drops, no reply');
});

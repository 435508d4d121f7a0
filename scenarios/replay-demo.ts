// The replay demo: a capture of what a vipgate NIC would see on a small LAN — clients resolving
// the VIPs by ARP and opening HTTP connections (IP mode and port mode), backends answering
// (nat), a ping, a router's "fragmentation needed" about a connection, and some things that
// must be refused — run through `vipgate replay` in dsr and nat.
// No privileges needed. Run: npm run demo   (files land in scenarios/out/)
// npm start runs it when it cannot build the live lab (not root).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { arp, tcp, icmp, ipDatagram } from '../src/wire/frames';
import { ICMP_ECHO_REQUEST, ICMP_DEST_UNREACH, ICMP_UNREACH_FRAG_NEEDED } from '../src/wire/icmp';
import { ARP_OP_REPLY } from '../src/wire/arp';
import { TCP_SYN, TCP_ACKF, TCP_PSH, TCP_FIN } from '../src/wire/tcp';
import { PcapWriter, readCaptureFile } from '../src/pcap';
import { loadConfig } from '../src/control/config';
import { runReplay, formatReplayReport } from '../src/cli/replay';
import { describeFrame } from '../src/wire/describe';
import { formatIpv4 } from '../src/wire/addr';

const repo = path.resolve(__dirname, '..', '..');
const outDir = path.join(repo, 'scenarios', 'out');
const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

function makeCapture(mode: 'dsr' | 'nat', configPath: string, file: string): void {
  const cfg = loadConfig(configPath);
  const ours = cfg.macText!;
  const w = new PcapWriter();
  let now = T0;
  const put = (f: Buffer, dt = 1) => { now += dt; w.add(f, 0, f.length, now); };
  const backendOf = (vip: number, port: number) => {
    const s = cfg.services.find((x) => x.vip === vip && x.port === port) ?? cfg.services.find((x) => x.vip === vip && x.port === 0);
    return s ? cfg.backends.find((b) => b.name === s.active)! : null;
  };
  const clients = [11, 12, 13].map((i) => ({ ip: `10.0.0.${i}`, mac: `02:aa:00:00:00:${i.toString(16).padStart(2, '0')}` }));
  for (const c of clients) for (const vip of cfg.vipTexts) put(arp({ src: c.mac, senderIp: c.ip, targetIp: vip, pad: true }));
  let port = 40000;
  for (let round = 0; round < 4; round++) {
    for (const c of clients) {
      for (const vipText of cfg.vipTexts) {
        const vip = cfg.vips[cfg.vipTexts.indexOf(vipText)]!;
        const dport = 80, sport = port++;
        const be = backendOf(vip, dport);
        const C = { srcMac: c.mac, dstMac: ours, src: c.ip, dst: vipText, srcPort: sport, dstPort: dport };
        // nat: the backend answers the client through vipgate, its gateway
        const B = be && { srcMac: be.macText ?? '02:00:00:00:ff:ff', dstMac: ours, src: be.ipText, dst: c.ip, srcPort: dport, dstPort: sport };
        put(tcp({ ...C, flags: TCP_SYN, seq: 100, options: { mss: 1460, sackPermitted: true, tsval: 1, wscale: 7 } }));
        if (mode === 'nat' && B) put(tcp({ ...B, flags: TCP_SYN | TCP_ACKF, seq: 900, ack: 101, options: { mss: 1460 } }));
        put(tcp({ ...C, flags: TCP_ACKF, seq: 101, ack: 901 }));
        put(tcp({ ...C, flags: TCP_ACKF | TCP_PSH, seq: 101, ack: 901, payload: `GET / HTTP/1.1\r\nHost: ${vipText}\r\n\r\n` }));
        if (mode === 'nat' && B) put(tcp({ ...B, flags: TCP_ACKF | TCP_PSH | TCP_FIN, seq: 901, ack: 140, payload: `HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n${be!.name}` }));
        put(tcp({ ...C, flags: TCP_ACKF | TCP_FIN, seq: 140, ack: 950 }));
      }
    }
    now += 1000;
  }
  // ping: two echo requests to the first VIP, answered by vipgate itself
  const c = clients[0]!;
  for (let seq = 1; seq <= 2; seq++) {
    put(icmp({ srcMac: c.mac, dstMac: ours, src: c.ip, dst: cfg.vipTexts[0]!, icmp: { type: ICMP_ECHO_REQUEST, id: 0x1d, seq, data: Buffer.alloc(56, 0x2a) } }), 1000);
  }
  // A router on the clients' path cannot forward a full-size segment of the last connection to
  // its client and says so to the VIP: vipgate carries the error to that flow's backend.
  const last = clients[clients.length - 1]!, lastVip = cfg.vipTexts[cfg.vipTexts.length - 1]!;
  const big = tcp({ srcMac: ours, dstMac: last.mac, src: lastVip, dst: last.ip, srcPort: 80, dstPort: port - 1, flags: TCP_ACKF, seq: 950, ack: 140, payload: Buffer.alloc(1448, 0x61) });
  put(icmp({ srcMac: '02:ee:00:00:00:01', dstMac: ours, src: '10.0.0.254', dst: lastVip,
    icmp: { type: ICMP_DEST_UNREACH, code: ICMP_UNREACH_FRAG_NEEDED, nextHopMtu: 1400, data: ipDatagram(big, 548) } }), 0);
  // Things vipgate must refuse, each counted under its reason:
  put(arp({ src: c.mac, senderIp: c.ip, targetIp: '10.0.0.1', pad: true }));                                   // arp_not_for_vip
  put(arp({ src: '02:66:66:66:66:66', senderIp: cfg.vipTexts[0]!, targetIp: cfg.vipTexts[0]!, pad: true }));  // arp_conflict
  put(arp({ src: '02:00:00:00:01:21', dst: ours, oper: ARP_OP_REPLY, senderIp: '10.0.1.21', targetIp: formatIpv4(cfg.vips[0]!), targetMac: ours, pad: true })); // arp_reply
  put(tcp({ srcMac: c.mac, dstMac: ours, src: c.ip, dst: cfg.vipTexts[1]!, srcPort: 50000, dstPort: 22, flags: TCP_SYN }));   // no_service
  put(tcp({ srcMac: c.mac, dstMac: ours, src: c.ip, dst: cfg.vipTexts[0]!, srcPort: 50001, dstPort: 80, flags: TCP_ACKF }));  // unknown_flow
  put(tcp({ srcMac: c.mac, dstMac: ours, src: c.ip, dst: '10.0.0.50', srcPort: 50002, dstPort: 80, flags: TCP_SYN }));        // not_for_us
  const v6 = Buffer.from(tcp({ srcMac: c.mac, dstMac: ours, src: c.ip, dst: cfg.vipTexts[0]!, srcPort: 1, dstPort: 80, flags: TCP_SYN }));
  v6[12] = 0x86; v6[13] = 0xdd; put(v6);                                                                        // unsupported_ethertype
  w.writeFile(file);
}

function main(): void {
  fs.mkdirSync(outDir, { recursive: true });
  for (const mode of ['dsr', 'nat'] as const) {
    const config = path.join(repo, 'scenarios', 'configs', `replay-${mode}.yaml`);
    const input = path.join(outDir, `demo-${mode}-in.pcap`);
    const out = path.join(outDir, `demo-${mode}-out.pcap`);
    makeCapture(mode, config, input);
    const report = runReplay({ config, input, out, allowTruncated: false });
    console.log(formatReplayReport(report));
    const frames = readCaptureFile(out).frames;
    console.log(`  first frames vipgate sent (${path.relative(process.cwd(), out)}):`);
    const ipv4 = frames.filter((f) => f.data[12] === 0x08 && f.data[13] === 0x00);
    const shown = [frames.find((f) => f.data[12] === 0x08 && f.data[13] === 0x06)!, ...ipv4.slice(0, 5), ...ipv4.filter((f) => f.data[23] === 1)];
    for (const f of shown) console.log('    ' + describeFrame(f.data));
    console.log('');
  }
  console.log(`inputs and outputs are in ${path.relative(process.cwd(), outDir)}/ (open them with tcpdump -nn -e -r FILE or Wireshark)`);
}

main();

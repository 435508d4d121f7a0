// The lab's own ARP probe (issue 12 item 5): sends ARP requests for one address on an interface
// and reports every reply, as JSON — what the tests used `arping` for. `arping` comes in two
// flavours on Debian (iputils-arping and Thomas Habets' arping) that print, count and exit
// differently; the tests must not depend on which one a machine has. This one goes through the
// same libpcap binding vipgate uses (cap), so a machine that can run vipgate can run it.
//
//   ip netns exec NS node dist/scenarios/lab/arp-probe.js --iface eth0 --count 3 --interval-ms 300 --wait-ms 1000 10.77.0.100
//   -> {"target":"10.77.0.100","sent":3,"replies":3,"macs":["02:77:00:00:00:02"],"perRequest":[1,1,1]}
//
// Like arping, requests are broadcast, from the interface's MAC and its first IPv4 address
// (0.0.0.0 without one: an RFC 5227 probe); a reply counts when it is an ARP reply whose
// sender is the target and which is addressed to this interface's MAC. Replies are attributed
// to the latest request sent before them (perRequest), so "exactly one reply per request" is
// checkable.

import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { arp } from '../../src/wire/frames';
import { ETHERTYPE_ARP, ETH_HEADER_LEN as ETH_HLEN, ETH_TYPE } from '../../src/wire/ethernet';
import { ARP_OP_REPLY, ARP_SHA, arpOper, arpSpa } from '../../src/wire/arp';
import { formatIpv4, formatMac, parseIpv4 } from '../../src/wire/addr';

export interface ArpProbeResult {
  target: string;
  sent: number;
  /** Replies from the target, in total. */
  replies: number;
  /** The distinct MACs the replies carried (sender hardware address), lower case. */
  macs: string[];
  /** Replies after each request (before the next one). */
  perRequest: number[];
  /** Per request, the MACs that replied to it (a VIP answered by two nodes shows two). */
  macsPerRequest: string[][];
  /** Per request, when it was sent (wall clock, ms since the epoch), to line replies up with events. */
  sentAt: number[];
}

/** The part of the libpcap binding (cap) the lab's raw tools use. */
export interface CapLike {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  on(ev: 'packet', cb: (nbytes: number) => void): void;
  send(buf: Buffer, len: number): void;
  close(): void;
  setMinBytes?: (n: number) => void;
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { iface: { type: 'string' }, count: { type: 'string' }, 'interval-ms': { type: 'string' }, 'wait-ms': { type: 'string' } },
    allowPositionals: true, strict: true,
  });
  const iface = values.iface ?? 'eth0';
  const count = Number(values.count ?? 3);
  const intervalMs = Number(values['interval-ms'] ?? 300);
  const waitMs = Number(values['wait-ms'] ?? 1000);
  const target = positionals[0] ?? '';
  const targetIp = parseIpv4(target);
  if (targetIp === null || !(count >= 1 && count <= 100) || !(intervalMs >= 10) || !(waitMs >= 10)) {
    process.stderr.write('usage: arp-probe.js [--iface eth0] [--count 1..100] [--interval-ms 300] [--wait-ms 1000] IPV4\n');
    process.exit(2);
  }
  const macText = fs.readFileSync(`/sys/class/net/${iface}/address`, 'utf8').trim().toLowerCase();
  let sourceIp = '0.0.0.0';
  try {
    const j = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show', 'dev', iface], { encoding: 'utf8' })) as Array<{ addr_info?: Array<{ local?: string }> }>;
    sourceIp = j.flatMap((x) => x.addr_info ?? [])[0]?.local ?? sourceIp;
  } catch { /* no address: probe from 0.0.0.0 */ }

  let Cap: new () => CapLike;
  try {
    ({ Cap } = require('cap') as { Cap: new () => CapLike });
  } catch (e) {
    process.stderr.write(`arp-probe: the libpcap binding (cap) is not available: ${(e as Error).message.split('\n')[0]}; apt-get install -y libpcap-dev g++ make python3 && npm install\n`);
    process.exit(3);
  }
  const cap = new Cap();
  const rx = Buffer.alloc(2048);
  cap.open(iface, `arp and ether dst ${macText}`, 1 << 20, rx);
  cap.setMinBytes?.(0);

  const perRequest: number[] = [];
  const macsPerRequest: string[][] = [];
  const sentAt: number[] = [];
  const macs = new Set<string>();
  cap.on('packet', (n) => {
    if (perRequest.length === 0 || n < ETH_HLEN + 28) return;
    if (rx.readUInt16BE(ETH_TYPE) !== ETHERTYPE_ARP) return; // tagged frames are not ours to count
    if (arpOper(rx, ETH_HLEN) !== ARP_OP_REPLY || (arpSpa(rx, ETH_HLEN) >>> 0) !== (targetIp! >>> 0)) return;
    perRequest[perRequest.length - 1]!++;
    const mac = formatMac(rx, ETH_HLEN + ARP_SHA).toLowerCase();
    macs.add(mac);
    const these = macsPerRequest[macsPerRequest.length - 1]!;
    if (!these.includes(mac)) these.push(mac);
  });
  const frame = arp({ src: macText, senderIp: sourceIp, targetIp: formatIpv4(targetIp!), pad: true });
  const sendOne = () => { perRequest.push(0); macsPerRequest.push([]); sentAt.push(Date.now()); cap.send(frame, frame.length); };
  sendOne();
  let sent = 1;
  const timer = setInterval(() => {
    if (sent >= count) return;
    sendOne();
    sent++;
    if (sent >= count) {
      clearInterval(timer);
      setTimeout(finish, waitMs);
    }
  }, intervalMs);
  if (count === 1) { clearInterval(timer); setTimeout(finish, waitMs); }
  function finish(): void {
    cap.close();
    const r: ArpProbeResult = { target, sent, replies: perRequest.reduce((a, b) => a + b, 0), macs: [...macs], perRequest, macsPerRequest, sentAt };
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  }
}

if (require.main === module) main();

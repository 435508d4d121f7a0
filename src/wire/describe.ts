// One line per frame, in the manner of `tcpdump -nn -e`, from the parsed forms. For people
// reading replay output and demo scenarios; never on the packet path.

import { parseEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethernet';
import { parseArp, ARP_OP_REQUEST, ARP_OP_REPLY } from './arp';
import { parseIpv4Header, IPPROTO_TCP, IPPROTO_ICMP } from './ipv4';
import { parseIcmp, icmpTypeText } from './icmp';
import { parseTcp, tcpFlagsText } from './tcp';

export function describeFrame(buf: Uint8Array, off = 0, len = buf.length - off): string {
  const e = parseEthernet(buf, off, len);
  if (!e) return `truncated frame (${len} bytes)`;
  const tags = e.vlans.map((v) => `vlan ${v.vid}, `).join('');
  const head = `${e.src} > ${e.dst}, ${tags}`;
  const l3 = off + e.l3, avail = len - e.l3;
  if (e.etherType === ETHERTYPE_ARP) {
    const a = parseArp(buf, l3, avail);
    if (!a) return `${head}ARP, truncated or not Ethernet/IPv4`;
    if (a.oper === ARP_OP_REQUEST) return `${head}ARP, Request who-has ${a.targetIp} tell ${a.senderIp}`;
    if (a.oper === ARP_OP_REPLY) return `${head}ARP, Reply ${a.senderIp} is-at ${a.senderMac}`;
    return `${head}ARP, opcode ${a.oper}`;
  }
  if (e.etherType !== ETHERTYPE_IPV4) return `${head}ethertype 0x${e.etherType.toString(16).padStart(4, '0')}, length ${len}`;
  const ip = parseIpv4Header(buf, l3, avail);
  if (typeof ip === 'string') return `${head}IPv4, ${ip}`;
  const frag = ip.mf || ip.fragOffset ? ` frag ${ip.fragOffset}${ip.mf ? '+' : ''}` : '';
  if (ip.protocol === IPPROTO_ICMP && !ip.fragOffset) {
    const m = parseIcmp(buf, l3 + ip.ihl, Math.min(avail, ip.totalLength) - ip.ihl);
    if (typeof m === 'string') return `${head}IPv4 ${ip.src} > ${ip.dst}: ICMP ${m}${frag}, ttl ${ip.ttl}`;
    const what = m.id !== undefined ? `, id ${m.id}, seq ${m.seq}` : m.nextHopMtu !== undefined ? ` - need to frag (mtu ${m.nextHopMtu})` : m.code ? ` code ${m.code}` : '';
    const about = m.quote ? `, about ${m.quote.ip.src}.${m.quote.srcPort} > ${m.quote.ip.dst}.${m.quote.dstPort}` : '';
    return `${head}IPv4 ${ip.src} > ${ip.dst}: ICMP ${icmpTypeText(m.type)}${what}${about}${frag}, ttl ${ip.ttl}`;
  }
  if (ip.protocol !== IPPROTO_TCP || ip.fragOffset) return `${head}IPv4 ${ip.src} > ${ip.dst}: proto ${ip.protocol}${frag}, ttl ${ip.ttl}`;
  const t = parseTcp(buf, l3 + ip.ihl, Math.min(avail, ip.totalLength) - ip.ihl);
  if (typeof t === 'string') return `${head}IPv4 ${ip.src} > ${ip.dst}: TCP ${t}`;
  const payload = ip.totalLength - ip.ihl - t.headerLen;
  return `${head}IPv4 ${ip.src}.${t.srcPort} > ${ip.dst}.${t.dstPort}: Flags [${tcpFlagsText(t.flags)}], ttl ${ip.ttl}, length ${payload}`;
}

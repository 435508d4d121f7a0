// Reading a frame back through the wire parsed forms, for assertions on what vipgate sent.
import { parseEthernet } from '../../src/wire/ethernet';
import { parseIpv4Header, Ipv4Repr } from '../../src/wire/ipv4';
import { parseTcp, TcpRepr, tcpChecksumOk } from '../../src/wire/tcp';
import { parseIpv4 } from '../../src/wire/addr';

export function ipOf(f: Buffer): Ipv4Repr {
  const e = parseEthernet(f)!;
  const r = parseIpv4Header(f, e.l3, f.length - e.l3);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

export function tcpOf(f: Buffer): TcpRepr {
  const e = parseEthernet(f)!, ip = ipOf(f);
  const r = parseTcp(f, e.l3 + ip.ihl, ip.totalLength - ip.ihl);
  if (typeof r === 'string') throw new Error(r);
  return r;
}

/** True when the frame's TCP checksum verifies. */
export function tcpOk(f: Buffer): boolean {
  const e = parseEthernet(f)!, ip = ipOf(f);
  return tcpChecksumOk(f, e.l3 + ip.ihl, ip.totalLength - ip.ihl, parseIpv4(ip.src)!, parseIpv4(ip.dst)!);
}

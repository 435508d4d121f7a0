// Facts about the host vipgate runs on, read before it attaches to a NIC: whether the
// interface exists and its MAC, MTU, state and IPv4 addresses; whether this process has the
// capabilities it needs. Errors name the interface and say what to do.

import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { VipgateError } from '../control/errors';
import { parseMac, parseIpv4 } from '../wire/addr';

export interface InterfaceInfo {
  name: string;
  mac: Uint8Array;
  macText: string;
  mtu: number;
  up: boolean;
  ipv4: number[];
}

export function listInterfaces(): string[] {
  try { return fs.readdirSync('/sys/class/net').sort(); } catch { return []; }
}

export function interfaceInfo(name: string): InterfaceInfo {
  const dir = `/sys/class/net/${name}`;
  if (!/^[^/:\s]{1,15}$/.test(name) || !fs.existsSync(dir)) {
    const have = listInterfaces();
    throw new VipgateError('ENIC_NOT_FOUND',
      `no network interface named "${name}" here; interfaces on this host: ${have.join(', ') || '(none)'}. ` +
      'Set interface: in the config (or --interface) to the NIC that faces the clients');
  }
  const read = (f: string) => { try { return fs.readFileSync(`${dir}/${f}`, 'utf8').trim(); } catch { return ''; } };
  const macText = read('address');
  const mac = parseMac(macText);
  if (!mac || read('type') !== '1') {
    throw new VipgateError('ENIC_LINKTYPE', `${name} is not an Ethernet interface (type ${read('type') || '?'}, address "${macText}"); attach vipgate to an Ethernet NIC`);
  }
  let ipv4: number[] = [];
  try {
    const j = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show', 'dev', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ addr_info?: Array<{ local?: string }> }>;
    ipv4 = j.flatMap((x) => x.addr_info ?? []).map((a) => parseIpv4(a.local ?? '')).filter((x): x is number => x !== null);
  } catch { /* no iproute2: we only lose the ARP sender address, resolution uses 0.0.0.0 probes */ }
  const oper = read('operstate');
  return { name, mac, macText, mtu: Number(read('mtu')) || 1500, up: oper === 'up' || oper === 'unknown', ipv4 };
}

const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** Which of the capabilities vipgate needs are missing from this process's effective set. */
export function missingCapabilities(needAdmin: boolean): string[] {
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    eff = m ? BigInt('0x' + m[1]) : 0n;
  } catch { return []; /* not Linux /proc: let the open fail with its own message */ }
  const missing: string[] = [];
  if (!(eff & (1n << BigInt(CAP_NET_RAW)))) missing.push('CAP_NET_RAW (capture and send raw frames)');
  if (needAdmin && !(eff & (1n << BigInt(CAP_NET_ADMIN)))) missing.push('CAP_NET_ADMIN (install the nftables ingress rule)');
  return missing;
}

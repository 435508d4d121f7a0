// Text forms of addresses, for config, tests and printing (never on the packet path).
// IPv4 addresses are kept as unsigned 32-bit numbers in host order of significance:
// 10.0.0.1 === 0x0a000001. MACs are six bytes.

import { Address4 } from 'ip-address';

/** Parse dotted-quad IPv4 text into a u32, or null when it is not a plain IPv4 address. */
export function parseIpv4(text: string): number | null {
  if (typeof text !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return null;
  if (!Address4.isValid(text)) return null;
  const parts = text.split('.').map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIpv4(v: number): string {
  return `${(v >>> 24) & 0xff}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** Parse "02:00:5e:00:00:01" (or with dashes) into six bytes, or null. */
export function parseMac(text: string): Uint8Array | null {
  if (typeof text !== 'string') return null;
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text);
  if (!m) return null;
  const out = new Uint8Array(6);
  const idx = [1, 3, 4, 5, 6, 7];
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[idx[i]!]!, 16);
  return out;
}

export function formatMac(buf: Uint8Array, o = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    if (i) s += ':';
    s += (buf[o + i]! | 0).toString(16).padStart(2, '0');
  }
  return s;
}

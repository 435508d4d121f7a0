// Ethernet II (IEEE 802.3 with an EtherType) and 802.1Q / 802.1ad VLAN tags.
//
//  0                   6                  12      14
//  +-------------------+-------------------+-------+---------
//  | destination MAC   | source MAC        | type  | payload
//  +-------------------+-------------------+-------+---------
// A VLAN tag inserts 4 bytes before the type: TPID (0x8100 C-tag, 0x88a8 S-tag; 0x9100 is the
// pre-standard QinQ TPID still sent by some switches) then TCI (PCP:3 DEI:1 VID:12).

import { u16, setU16, macCopy } from './bytes';
import { formatMac, parseMac } from './addr';

export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const ETH_HEADER_LEN = 14;
export const VLAN_TAG_LEN = 4;
/** We accept at most two tags (802.1ad S-tag + 802.1Q C-tag, "QinQ"). */
export const MAX_VLAN_TAGS = 2;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_QINQ_OLD = 0x9100;
export const ETHERTYPE_IPV6 = 0x86dd;

export function isVlanTpid(t: number): boolean {
  return t === ETHERTYPE_VLAN || t === ETHERTYPE_QINQ || t === ETHERTYPE_QINQ_OLD;
}

export function ethType(buf: Uint8Array, l2: number): number {
  return u16(buf, l2 + ETH_TYPE);
}

// ---- parsed form (control code, tests, printing) ----

export interface VlanTag { tpid: number; pcp: number; dei: boolean; vid: number; }
export interface EthernetRepr {
  dst: string;
  src: string;
  vlans: VlanTag[];
  etherType: number;
  /** Offset of the L3 header from the start of the frame. */
  l3: number;
}

/** Parse an Ethernet header (with up to MAX_VLAN_TAGS tags); null when the frame is too short. */
export function parseEthernet(buf: Uint8Array, off = 0, len = buf.length - off): EthernetRepr | null {
  if (len < ETH_HEADER_LEN) return null;
  let p = off + ETH_TYPE;
  let type = u16(buf, p);
  const vlans: VlanTag[] = [];
  while (isVlanTpid(type) && vlans.length < MAX_VLAN_TAGS) {
    if (p + 2 + VLAN_TAG_LEN > off + len) return null;
    const tci = u16(buf, p + 2);
    vlans.push({ tpid: type, pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, vid: tci & 0x0fff });
    p += VLAN_TAG_LEN;
    type = u16(buf, p);
  }
  return { dst: formatMac(buf, off + ETH_DST), src: formatMac(buf, off + ETH_SRC), vlans, etherType: type, l3: p + 2 - off };
}

/** Write an Ethernet header into buf at off; returns the number of bytes written (the L3 offset). */
export function emitEthernet(r: Omit<EthernetRepr, 'l3'>, buf: Uint8Array, off = 0): number {
  const dst = parseMac(r.dst), src = parseMac(r.src);
  if (!dst || !src) throw new Error(`ethernet: bad MAC in ${r.dst} / ${r.src}`);
  macCopy(buf, off + ETH_DST, dst, 0);
  macCopy(buf, off + ETH_SRC, src, 0);
  let p = off + ETH_TYPE;
  for (const v of r.vlans) {
    setU16(buf, p, v.tpid);
    setU16(buf, p + 2, ((v.pcp & 7) << 13) | (v.dei ? 0x1000 : 0) | (v.vid & 0x0fff));
    p += VLAN_TAG_LEN;
  }
  setU16(buf, p, r.etherType);
  return p + 2 - off;
}

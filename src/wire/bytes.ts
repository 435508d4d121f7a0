// Byte-level accessors over a frame. All multi-byte fields are network byte order (big-endian).
// These do no bounds checks: the caller checks a layer's length once where the layer starts
// (smoltcp's "check the length once, then no accessor can fail"). Out-of-range reads of a
// Uint8Array yield undefined, which `|` coerces to 0, so a missed check can never throw.

export function u16(buf: Uint8Array, o: number): number {
  return (buf[o]! << 8) | buf[o + 1]!;
}

export function u32(buf: Uint8Array, o: number): number {
  return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
}

/**
 * The same 32 bits as a signed number (`| 0`). The packet path keeps IPv4 addresses and packed
 * port pairs this way: a value of 2^31 or more is not a V8 small integer, and every time such a
 * value crosses a call that is not inlined it is boxed into a fresh heap number (garbage per packet).
 */
export function s32(buf: Uint8Array, o: number): number {
  return (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
}

export function setU16(buf: Uint8Array, o: number, v: number): void {
  buf[o] = (v >>> 8) & 0xff;
  buf[o + 1] = v & 0xff;
}

export function setU32(buf: Uint8Array, o: number, v: number): void {
  buf[o] = (v >>> 24) & 0xff;
  buf[o + 1] = (v >>> 16) & 0xff;
  buf[o + 2] = (v >>> 8) & 0xff;
  buf[o + 3] = v & 0xff;
}

/** Compare six bytes of `a` at `ao` with six bytes of `b` at `bo`. */
export function macEq(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  return (
    a[ao] === b[bo] && a[ao + 1] === b[bo + 1] && a[ao + 2] === b[bo + 2] &&
    a[ao + 3] === b[bo + 3] && a[ao + 4] === b[bo + 4] && a[ao + 5] === b[bo + 5]
  );
}

/** Copy six bytes (a MAC address) from `src` at `so` into `dst` at `do_`. */
export function macCopy(dst: Uint8Array, do_: number, src: Uint8Array, so: number): void {
  dst[do_] = src[so]!; dst[do_ + 1] = src[so + 1]!; dst[do_ + 2] = src[so + 2]!;
  dst[do_ + 3] = src[so + 3]!; dst[do_ + 4] = src[so + 4]!; dst[do_ + 5] = src[so + 5]!;
}

/** True for ff:ff:ff:ff:ff:ff. */
export function macIsBroadcast(a: Uint8Array, o: number): boolean {
  return (a[o]! & a[o + 1]! & a[o + 2]! & a[o + 3]! & a[o + 4]! & a[o + 5]!) === 0xff;
}

/** True when the group bit (I/G, least significant bit of the first octet) is set: multicast or broadcast. */
export function macIsGroup(a: Uint8Array, o: number): boolean {
  return (a[o]! & 1) === 1;
}

/** True for 00:00:00:00:00:00 (used by ARP requests for the unknown target hardware address). */
export function macIsZero(a: Uint8Array, o: number): boolean {
  return (a[o]! | a[o + 1]! | a[o + 2]! | a[o + 3]! | a[o + 4]! | a[o + 5]!) === 0;
}

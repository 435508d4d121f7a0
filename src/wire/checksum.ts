// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/** One's-complement sum of buf[off, off+len) as 16-bit big-endian words, not folded, not inverted. */
export function sum16(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) s += buf[off + len - 1]! << 8;
  return s;
}

/** Fold a 32-bit+ accumulator into 16 bits (end-around carry). */
export function fold(s: number): number {
  // Two folds suffice for any sum of fewer than 65536 16-bit words; loop to be safe for larger.
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for data whose (unfolded) sum is `s`. */
export function finish(s: number): number {
  return ~fold(s) & 0xffff;
}

/** Checksum of a byte range (e.g. an IPv4 header with its checksum field zeroed). */
export function checksum(buf: Uint8Array, off: number, len: number): number {
  return finish(sum16(buf, off, len));
}

/** TCP/UDP pseudo-header sum for IPv4 (RFC 793 §3.1): src, dst, zero+protocol, L4 length. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, l4len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
}

// ---- incremental update, RFC 1624 ----
// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with one's-complement addition. Eqn. 3 (not eqn. 2 of
// RFC 1141) is the form that never produces 0x0000 from a non-zero result by mistake ("-0" case).
// These take the current checksum field value and return the new one. They are written on plain
// numbers so they inline on the packet path.

/** New checksum after one 16-bit word of the covered data changes from `old` to `nw`. */
export function csumReplace16(hc: number, old: number, nw: number): number {
  let s = (~hc & 0xffff) + (~old & 0xffff) + nw;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** New checksum after a 32-bit field (an IPv4 address) changes from `old` to `nw`. */
export function csumReplace32(hc: number, old: number, nw: number): number {
  let s = (~hc & 0xffff) + (~(old >>> 16) & 0xffff) + (~old & 0xffff) + (nw >>> 16) + (nw & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

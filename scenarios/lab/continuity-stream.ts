// The continuity workload's byte stream: byte i of stream `seed` is a hash of (seed, i / 4), so a
// download can be checked byte for byte without storing it, a dropped, duplicated or reordered
// segment shows at its own offset, and two streams with different seeds never look alike.

/** Hash of a 32-bit word (murmur3's finaliser): every input bit moves every output bit. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Byte `at` of stream `seed`. */
export function streamByte(seed: number, at: number): number {
  const w = mix((seed ^ Math.imul(Math.floor(at / 4) + 1, 0x9e3779b1)) >>> 0);
  return (w >>> ((at & 3) * 8)) & 0xff;
}

/** Writes bytes [from, from + n) of stream `seed` into buf at off. */
export function fillStream(seed: number, from: number, buf: Uint8Array, off: number, n: number): void {
  for (let i = 0; i < n; i++) buf[off + i] = streamByte(seed, from + i);
}

/** The first offset in [from, from + n) where buf (at off) differs from the stream, or -1. */
export function checkStream(seed: number, from: number, buf: Uint8Array, off: number, n: number): number {
  for (let i = 0; i < n; i++) if (buf[off + i] !== streamByte(seed, from + i)) return from + i;
  return -1;
}

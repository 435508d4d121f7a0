// Allocation-free 32-bit hashing of fixed-size numeric keys (MurmurHash3 x86_32 body and
// finaliser over 32-bit words). gopacket: "creating strings allocates; arrays doubled the speed".
// The seed is a parameter (kept in shared memory) so replays are repeatable and a new worker
// hashes exactly as the old one did.

function mixK(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0; // signed: callers mask it, and a Smi is never boxed (see s32 in wire/bytes.ts)
}

export function hash1(a: number, seed: number): number {
  return fmix(mixK(seed, a) ^ 4);
}

export function hash2(a: number, b: number, seed: number): number {
  return fmix(mixK(mixK(seed, a), b) ^ 8);
}

export function hash3(a: number, b: number, c: number, seed: number): number {
  return fmix(mixK(mixK(mixK(seed, a), b), c) ^ 12);
}

// Carving typed-array views out of one ArrayBuffer or SharedArrayBuffer.
//
// Every table the packet path touches is a set of typed arrays over memory handed to it, never
// JavaScript objects, so that a supervisor can own the memory and a new worker can attach to it.
// The same layout function runs twice: once over a null buffer to measure, once to create views.

export type Memory = ArrayBuffer | SharedArrayBuffer;

export class Carver {
  private off = 0;
  constructor(readonly buf: Memory | null, private readonly base = 0) {}
  // Alignment by division, not `& ~(align - 1)`: bitwise operators work on 32-bit signed integers,
  // and a 16Mi-flow state (2 GiB of flow records) would wrap to a negative size.
  private take(bytes: number, align: number): number {
    this.off = Math.ceil(this.off / align) * align;
    const at = this.base + this.off;
    this.off += bytes;
    return at;
  }
  get size(): number { return Math.ceil(this.off / 64) * 64; }
  /** Reserve `bytes` aligned to `align` (a power of two) and return the byte offset, for several views over one region. */
  region(bytes: number, align: number): number { return this.take(bytes, align); }
  f64(n: number): Float64Array { const at = this.take(n * 8, 8); return this.buf ? new Float64Array(this.buf, at, n) : new Float64Array(0); }
  u32(n: number): Uint32Array { const at = this.take(n * 4, 8); return this.buf ? new Uint32Array(this.buf, at, n) : new Uint32Array(0); }
  i32(n: number): Int32Array { const at = this.take(n * 4, 8); return this.buf ? new Int32Array(this.buf, at, n) : new Int32Array(0); }
  u8(n: number): Uint8Array { const at = this.take(n, 8); return this.buf ? new Uint8Array(this.buf, at, n) : new Uint8Array(0); }
}

/** Allocate zeroed memory of `size` bytes, shared when asked (for a supervisor/worker split). */
export function allocMemory(size: number, shared: boolean): Memory {
  return shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

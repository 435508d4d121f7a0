// Classic pcap writer (draft-ietf-opsawg-pcap): little-endian, version 2.4, µs or ns timestamps.
//
// Frames are copied into one growing buffer as they are added, so the caller may reuse its
// receive buffer at once (vipgate's link layer lends a buffer that the next packet overwrites).

import * as fs from 'node:fs';
import { ioError } from './reader';

export interface PcapWriterOptions {
  /** LINKTYPE_* for the file header (0..65535). Default 1 (Ethernet). */
  linkType?: number;
  /** Snapshot length: frames longer than this are cut to it, as a capture would. Default 262144. */
  snapLen?: number;
  /** Write nanosecond timestamps (magic 4d3cb2a1) instead of microseconds (d4c3b2a1). */
  nanosecond?: boolean;
}

const FILE_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
/** libpcap's default and largest usual snapshot length (MAXIMUM_SNAPLEN). */
const DEFAULT_SNAPLEN = 262144;
/** Timestamps are unsigned 32-bit seconds in classic pcap (until 2106). */
const MAX_SEC = 0xffffffff;

/** An argument error at the API edge, with a stable code like Node's own. */
function argError(message: string): RangeError {
  const err = new RangeError(`PcapWriter: ${message}`) as RangeError & { code: string };
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function wr16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

function wr32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

export class PcapWriter {
  readonly linkType: number;
  readonly snapLen: number;
  readonly nanosecond: boolean;
  /** Records (headers + data), file header excluded; valid bytes are [0, used). */
  private records: Buffer;
  private used = 0;
  private frames = 0;

  constructor(opts: PcapWriterOptions = {}) {
    const linkType = opts.linkType ?? 1;
    const snapLen = opts.snapLen ?? DEFAULT_SNAPLEN;
    if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0xffff) {
      throw argError(`linkType must be an integer in 0..65535, got ${linkType}`);
    }
    if (!Number.isInteger(snapLen) || snapLen < 1 || snapLen > 0x7fffffff) {
      throw argError(`snapLen must be a positive integer, got ${snapLen}`);
    }
    this.linkType = linkType;
    this.snapLen = snapLen;
    this.nanosecond = opts.nanosecond === true;
    this.records = Buffer.allocUnsafe(4096);
  }

  /** Number of frames added so far. */
  get count(): number {
    return this.frames;
  }

  /**
   * Append one frame: bytes [off, off+len) of buf are copied now (the caller's buffer is
   * reused). tsMs is milliseconds since the epoch; it is rounded to the nearest µs (or ns) with
   * the carry into seconds (1999.9999 ms -> 2 s 0 µs). A double holds today's epoch in ms to
   * about 0.1 µs, so use addExact to write nanosecond timestamps exactly.
   * origLen defaults to len; frames longer than snapLen are cut to it.
   */
  add(buf: Uint8Array, off: number, len: number, tsMs: number, origLen?: number): void {
    if (!Number.isFinite(tsMs) || tsMs < 0) throw argError(`tsMs must be a finite non-negative number, got ${tsMs}`);
    let sec = Math.floor(tsMs / 1000);
    const remMs = tsMs - sec * 1000;
    let frac = Math.round(this.nanosecond ? remMs * 1e6 : remMs * 1e3);
    const perSec = this.nanosecond ? 1e9 : 1e6;
    // Round-to-nearest can reach a whole second (and float error can leave remMs a hair
    // outside [0, 1000)): normalise into [0, perSec).
    if (frac >= perSec) { sec++; frac -= perSec; } else if (frac < 0) { sec--; frac += perSec; }
    this.append(buf, off, len, sec, frac, origLen);
  }

  /**
   * Append one frame with an exact timestamp: tsSec whole seconds, tsNsec in [0, 1e9).
   * A microsecond writer rounds tsNsec to the nearest µs, carrying into the seconds.
   */
  addExact(buf: Uint8Array, off: number, len: number, tsSec: number, tsNsec: number, origLen?: number): void {
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec >= 1e9) {
      throw argError(`tsNsec must be an integer in [0, 1e9), got ${tsNsec}`);
    }
    let sec = tsSec;
    let frac = tsNsec;
    if (!this.nanosecond) {
      frac = Math.round(tsNsec / 1000);
      if (frac === 1e6) { sec++; frac = 0; }
    }
    this.append(buf, off, len, sec, frac, origLen);
  }

  private append(buf: Uint8Array, off: number, len: number, sec: number, frac: number, origLen?: number): void {
    if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > buf.length) {
      throw argError(`bytes [${off}, ${off}+${len}) are outside a buffer of ${buf.length} bytes`);
    }
    if (!Number.isInteger(sec) || sec < 0 || sec > MAX_SEC) {
      throw argError(`timestamp seconds ${sec} do not fit a pcap record (0..${MAX_SEC})`);
    }
    const wire = origLen ?? len;
    if (!isU32(wire) || wire < len) {
      throw argError(`origLen ${wire} must be an integer >= the frame length ${len}`);
    }
    const caplen = Math.min(len, this.snapLen);
    this.reserve(RECORD_HEADER_LEN + caplen);
    const r = this.records;
    const o = this.used;
    wr32le(r, o, sec);
    wr32le(r, o + 4, frac);
    wr32le(r, o + 8, caplen);
    wr32le(r, o + 12, wire);
    r.set(buf.subarray(off, off + caplen), o + RECORD_HEADER_LEN);
    this.used = o + RECORD_HEADER_LEN + caplen;
    this.frames++;
  }

  /** Grow the record buffer (doubling) so that n more bytes fit. */
  private reserve(n: number): void {
    const need = this.used + n;
    if (need <= this.records.length) return;
    let size = this.records.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.records.copy(next, 0, 0, this.used);
    this.records = next;
  }

  /** The whole file: classic pcap, little-endian, magic d4c3b2a1 (µs) or 4d3cb2a1 (ns). */
  toBuffer(): Buffer {
    const out = Buffer.allocUnsafe(FILE_HEADER_LEN + this.used);
    // File header (draft-ietf-opsawg-pcap §4), written little-endian: the magic's byte order
    // tells readers which order the rest of the file uses.
    wr32le(out, 0, this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4);
    wr16le(out, 4, 2); // major version
    wr16le(out, 6, 4); // minor version
    wr32le(out, 8, 0); // reserved1 (was thiszone; always 0)
    wr32le(out, 12, 0); // reserved2 (was sigfigs; always 0)
    wr32le(out, 16, this.snapLen);
    wr32le(out, 20, this.linkType); // no FCS information: upper 16 bits 0
    this.records.copy(out, FILE_HEADER_LEN, 0, this.used);
    return out;
  }

  /**
   * Write the file atomically: to `path + '.tmp-<pid>'`, flushed, then renamed over path, so a
   * reader never sees a half-written capture. Failures throw CaptureError code ECAPTURE_IO
   * naming the path (the temporary file is removed).
   */
  writeFile(path: string): void {
    const tmp = `${path}.tmp-${process.pid}`;
    const bytes = this.toBuffer();
    let fd: number | undefined;
    try {
      fd = fs.openSync(tmp, 'w', 0o644);
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
      fs.renameSync(tmp, path);
    } catch (err) {
      if (fd !== undefined) {
        try { fs.closeSync(fd); } catch { /* already failing; report the first error */ }
      }
      try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
      throw ioError(path, 'cannot write capture file', err);
    }
  }
}

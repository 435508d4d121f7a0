// Capture file reader and writer.
//
// Oracles: tshark-derived expect/<file>.json for every shared capture (frame counts, file
// magic, snapped frames, outer ethertypes, sha256), npm pcap-parser as an independent second
// reader for classic µs pcap, golden values read off the files, and hand-built pcapng files.

import t from 'tap';
import * as crypto from 'node:crypto';
import type { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CaptureError,
  MAX_CAPLEN,
  PcapWriter,
  parseCapture,
  readCaptureFile,
  type Capture,
  type CaptureFrame,
} from '../src/pcap/index';
import { sharedPcaps } from './helpers/paths';

// --- pcap-parser (no bundled types) ----------------------------------------------------------

interface PpHeader {
  timestampSeconds: number;
  timestampMicroseconds: number;
  capturedLength: number;
  originalLength: number;
}
interface PpGlobalHeader {
  magicNumber: number;
  majorVersion: number;
  minorVersion: number;
  snapshotLength: number;
  linkLayerType: number;
}
interface PpResult {
  globalHeader: PpGlobalHeader | undefined;
  packets: { header: PpHeader; data: Buffer }[];
  error: Error | undefined;
}
const pcapParser = require('pcap-parser') as { parse(input: NodeJS.ReadableStream): EventEmitter };

/** Read a file with pcap-parser; resolves on 'end' with whatever it produced. */
function ppRead(file: string): Promise<PpResult> {
  return new Promise((resolve) => {
    const stream = fs.createReadStream(file);
    const res: PpResult = { globalHeader: undefined, packets: [], error: undefined };
    const p = pcapParser.parse(stream);
    p.on('globalHeader', (h: PpGlobalHeader) => { res.globalHeader = h; });
    // pcap-parser hands out slices of a buffer it keeps; copy to be safe.
    p.on('packet', (pkt: { header: PpHeader; data: Buffer }) => {
      res.packets.push({ header: { ...pkt.header }, data: Buffer.from(pkt.data) });
    });
    p.on('error', (err: Error) => { res.error = err; });
    p.on('end', () => { stream.destroy(); resolve(res); });
  });
}

// --- helpers ---------------------------------------------------------------------------------

interface Expect {
  file: string;
  size_bytes: number;
  sha256: string;
  readable_by_tshark: boolean;
  tshark_exit_code: number;
  tshark_error: string | null;
  frames: number | null;
  truncated_frames?: number;
  outer_ethertype_counts?: Record<string, number>;
  capinfos: { magic_hex: string; packets: string; encapsulation: string } | null;
}

const sharedFiles = fs.existsSync(sharedPcaps)
  ? fs.readdirSync(sharedPcaps).filter((f) => /\.(pcap|pcapng)$/.test(f)).sort()
  : [];

function shared(name: string): string {
  return path.join(sharedPcaps, name);
}

function loadExpect(name: string): Expect {
  return JSON.parse(fs.readFileSync(path.join(sharedPcaps, 'expect', `${name}.json`), 'utf8')) as Expect;
}

/** Run fn, return the CaptureError it throws (or fail with what it did instead). */
function captureErrorOf(fn: () => unknown): CaptureError | string {
  try {
    fn();
    return 'did not throw';
  } catch (err) {
    return err instanceof CaptureError ? err : `threw a non-CaptureError: ${String(err)}`;
  }
}

/** File magic as capinfos prints it: the first four bytes in file order. */
const MAGIC: Record<string, { format: Capture['format']; byteOrder?: Capture['byteOrder']; resolution?: string }> = {
  d4c3b2a1: { format: 'pcap', byteOrder: 'le', resolution: 'us' },
  a1b2c3d4: { format: 'pcap', byteOrder: 'be', resolution: 'us' },
  '4d3cb2a1': { format: 'pcap', byteOrder: 'le', resolution: 'ns' },
  a1b23c4d: { format: 'pcap', byteOrder: 'be', resolution: 'ns' },
  '0a0d0d0a': { format: 'pcapng' },
};

/** capinfos encapsulation names -> LINKTYPE_*. */
const ENCAP: Record<string, number> = { Ethernet: 1, 'Linux cooked-mode capture v1': 113 };

/** Deterministic PRNG (xorshift32) so fuzz failures reproduce. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** Invariants every returned capture must hold, whatever bytes it came from. */
function captureInvariantProblem(cap: Capture): string | undefined {
  for (let i = 0; i < cap.frames.length; i++) {
    const f = cap.frames[i]!;
    if (f.index !== i + 1) return `frame ${i} has index ${f.index}`;
    if (f.data.length > MAX_CAPLEN) return `frame ${f.index} caplen ${f.data.length}`;
    if (!Number.isInteger(f.tsNsec) || f.tsNsec < 0 || f.tsNsec >= 1e9) return `frame ${f.index} tsNsec ${f.tsNsec}`;
    if (!Number.isInteger(f.tsSec)) return `frame ${f.index} tsSec ${f.tsSec}`;
    if (!Number.isFinite(f.tsMs)) return `frame ${f.index} tsMs ${f.tsMs}`;
  }
  return undefined;
}

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-pcap-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Classic pcap built by hand (either byte order, µs or ns), for cases the writer cannot make.
function classic(
  le: boolean, nano: boolean, snapLen: number, linkField: number,
  records: { sec: number; frac: number; data: Buffer; origLen?: number; caplen?: number }[],
): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  const w32 = (b: Buffer, o: number, v: number): void => { if (le) b.writeUInt32LE(v >>> 0, o); else b.writeUInt32BE(v >>> 0, o); };
  const w16 = (b: Buffer, o: number, v: number): void => { if (le) b.writeUInt16LE(v, o); else b.writeUInt16BE(v, o); };
  w32(h, 0, nano ? 0xa1b23c4d : 0xa1b2c3d4);
  w16(h, 4, 2); w16(h, 6, 4);
  w32(h, 16, snapLen); w32(h, 20, linkField);
  parts.push(h);
  for (const r of records) {
    const rh = Buffer.alloc(16);
    w32(rh, 0, r.sec); w32(rh, 4, r.frac);
    w32(rh, 8, r.caplen ?? r.data.length); w32(rh, 12, r.origLen ?? r.data.length);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

// pcapng built by hand, following draft-ietf-opsawg-pcapng §3.1 (block layout) and §3.5 (options).
class Ng {
  constructor(readonly le: boolean) {}
  u16(v: number): Buffer { const b = Buffer.alloc(2); if (this.le) b.writeUInt16LE(v); else b.writeUInt16BE(v); return b; }
  u32(v: number): Buffer { const b = Buffer.alloc(4); if (this.le) b.writeUInt32LE(v >>> 0); else b.writeUInt32BE(v >>> 0); return b; }
  u64(v: bigint): Buffer { const b = Buffer.alloc(8); if (this.le) b.writeBigUInt64LE(BigInt.asUintN(64, v)); else b.writeBigUInt64BE(BigInt.asUintN(64, v)); return b; }
  /** A block: type, total length, body padded to 4, total length again. */
  block(type: number, ...body: Buffer[]): Buffer {
    const raw = Buffer.concat(body);
    const padded = Buffer.concat([raw, Buffer.alloc((4 - (raw.length % 4)) % 4)]);
    const total = 12 + padded.length;
    return Buffer.concat([this.u32(type), this.u32(total), padded, this.u32(total)]);
  }
  options(list: [number, Buffer][]): Buffer {
    const parts: Buffer[] = [];
    for (const [code, v] of list) {
      parts.push(this.u16(code), this.u16(v.length), v, Buffer.alloc((4 - (v.length % 4)) % 4));
    }
    parts.push(this.u16(0), this.u16(0)); // opt_endofopt
    return Buffer.concat(parts);
  }
  shb(major = 1): Buffer {
    return this.block(0x0a0d0d0a, this.u32(0x1a2b3c4d), this.u16(major), this.u16(0), this.u64(-1n));
  }
  idb(linkType: number, snapLen: number, opts: [number, Buffer][] = []): Buffer {
    return this.block(1, this.u16(linkType), this.u16(0), this.u32(snapLen), opts.length > 0 ? this.options(opts) : Buffer.alloc(0));
  }
  epb(ifid: number, ts: bigint, data: Buffer, origLen = data.length): Buffer {
    return this.block(6, this.u32(ifid), this.u32(Number(ts >> 32n)), this.u32(Number(ts & 0xffffffffn)),
      this.u32(data.length), this.u32(origLen), data);
  }
  opb(ifid: number, ts: bigint, data: Buffer): Buffer {
    return this.block(2, this.u16(ifid), this.u16(0), this.u32(Number(ts >> 32n)), this.u32(Number(ts & 0xffffffffn)),
      this.u32(data.length), this.u32(data.length), data);
  }
  spb(origLen: number, data: Buffer): Buffer {
    return this.block(3, this.u32(origLen), data);
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

// --- the shared third-party captures ---------------------------------------------------------

t.test('shared captures match their tshark expectations', async (t) => {
  t.ok(sharedFiles.length >= 20, `found ${sharedFiles.length} captures in ${sharedPcaps}`);
  for (const name of sharedFiles) {
    t.test(name, async (t) => {
      const ex = loadExpect(name);
      const bytes = fs.readFileSync(shared(name));
      t.equal(crypto.createHash('sha256').update(bytes).digest('hex'), ex.sha256, 'file is the one the expectations describe');

      if (!ex.readable_by_tshark) {
        // tshark: "isn't a capture file in a format TShark understands"
        const err = captureErrorOf(() => readCaptureFile(shared(name)));
        if (typeof err === 'string') { t.fail(err); return; }
        t.equal(err.code, 'ECAPTURE_NOT_A_CAPTURE');
        t.ok(err.message.includes(name), `message names the file: ${err.message}`);
        t.equal(err.file, shared(name));
        return;
      }

      let cap: Capture;
      if (ex.tshark_exit_code !== 0) {
        // Readable but tshark complains: the only such file is cut short mid-record.
        t.match(ex.tshark_error ?? '', /cut short/, 'tshark says the file is cut short');
        const err = captureErrorOf(() => readCaptureFile(shared(name)));
        if (typeof err === 'string') { t.fail(err); return; }
        t.equal(err.code, 'ECAPTURE_TRUNCATED');
        t.ok(err.message.includes(name), `message names the file: ${err.message}`);
        cap = readCaptureFile(shared(name), { allowTruncated: true });
        t.ok(cap.truncatedAt, 'truncatedAt is set');
      } else {
        cap = readCaptureFile(shared(name));
        t.equal(cap.truncatedAt, undefined, 'not truncated');
      }

      t.equal(cap.frames.length, ex.frames, 'frame count = tshark');
      t.equal(String(cap.frames.length), ex.capinfos?.packets, 'frame count = capinfos');
      t.same(cap.frames.map((f) => f.index), cap.frames.map((_, i) => i + 1), 'frames numbered 1..n');
      t.equal(captureInvariantProblem(cap), undefined, 'frame invariants');

      const magic = ex.capinfos?.magic_hex;
      t.equal(bytes.subarray(0, 4).toString('hex'), magic, 'magic = capinfos');
      const m = MAGIC[magic ?? ''];
      if (m === undefined) { t.fail(`unknown magic ${magic}`); return; }
      t.equal(cap.format, m.format, 'format');
      if (m.byteOrder !== undefined) t.equal(cap.byteOrder, m.byteOrder, 'byte order');
      if (m.resolution !== undefined) t.equal(cap.resolution, m.resolution, 'resolution');

      const encap = ENCAP[ex.capinfos?.encapsulation ?? ''];
      if (encap !== undefined) {
        t.equal(cap.linkType, encap, `link type of ${ex.capinfos?.encapsulation}`);
        t.ok(cap.frames.every((f) => f.linkType === encap), 'every frame has the link type');
      }

      if (ex.truncated_frames !== undefined) {
        t.equal(cap.frames.filter((f) => f.data.length < f.origLen).length, ex.truncated_frames, 'snapped frames (caplen < len)');
      }

      // Outer ethertype of every Ethernet frame: checks that each frame's bytes start where
      // tshark's do (a frame boundary off by even one byte would scramble these counts).
      if (cap.linkType === 1 && ex.outer_ethertype_counts !== undefined) {
        const counts: Record<string, number> = {};
        for (const f of cap.frames) {
          if (f.data.length < 14) continue;
          const et = `0x${((f.data[12]! << 8) | f.data[13]!).toString(16).padStart(4, '0')}`;
          counts[et] = (counts[et] ?? 0) + 1;
        }
        t.same(counts, ex.outer_ethertype_counts, 'outer ethertype counts = tshark');
      }
    });
  }
});

t.test('pcapparser-malformed.pcap: clear not-a-capture error', async (t) => {
  const file = shared('pcapparser-malformed.pcap');
  const err = captureErrorOf(() => readCaptureFile(file));
  if (typeof err === 'string') { t.fail(err); return; }
  t.equal(err.code, 'ECAPTURE_NOT_A_CAPTURE');
  t.equal(err.message, `${file}: not a pcap or pcapng capture (first bytes 74 68 69 73 "this")`);
  // The same through parseCapture with a bare name.
  t.throws(() => parseCapture(fs.readFileSync(file), 'pcapparser-malformed.pcap'), {
    code: 'ECAPTURE_NOT_A_CAPTURE',
    message: 'pcapparser-malformed.pcap: not a pcap or pcapng capture (first bytes 74 68 69 73 "this")',
  });
});

t.test('dpkt-truncated_dns_2.pcap: truncated tail', async (t) => {
  const file = shared('dpkt-truncated_dns_2.pcap');
  // One full record (16 + 200 bytes at offset 24), then 7 bytes of frame 2's record header.
  const err = captureErrorOf(() => readCaptureFile(file));
  if (typeof err === 'string') { t.fail(err); return; }
  t.equal(err.code, 'ECAPTURE_TRUNCATED');
  t.equal(err.frame, 2);
  t.equal(err.offset, 240);
  t.equal(err.message, `${file}: file is cut short at byte offset 240 (frame 2): record header has 7 of 16 bytes`);

  const cap = readCaptureFile(file, { allowTruncated: true });
  t.equal(cap.frames.length, 1);
  t.same(cap.truncatedAt, { frame: 2, offset: 240, message: 'record header has 7 of 16 bytes' });
  const f = cap.frames[0]!;
  t.equal(f.data.length, 200);
  t.equal(f.origLen, 282);
  t.equal(f.tsSec, 1598792366);
  t.equal(f.tsNsec, 561863000);
});

t.test('tcpdump-tcp-handshake-nano.pcap: nanosecond pcap, Linux SLL', async (t) => {
  const cap = readCaptureFile(shared('tcpdump-tcp-handshake-nano.pcap'));
  t.equal(cap.format, 'pcap');
  t.equal(cap.resolution, 'ns');
  t.equal(cap.byteOrder, 'le');
  t.equal(cap.linkType, 113);
  t.equal(cap.frames.length, 3);
  // Golden values read off the record headers (ts_sec, ts_nsec, caplen).
  t.same(cap.frames.map((f) => [f.tsSec, f.tsNsec, f.data.length, f.origLen]), [
    [1418145369, 924505488, 76, 76],
    [1418145370, 52027262, 76, 76],
    [1418145370, 52115157, 68, 68],
  ]);
  t.ok(cap.frames.some((f) => f.tsNsec % 1000 !== 0), 'sub-microsecond digits survive');
  t.equal(cap.frames[0]!.tsMs, 1418145369 * 1000 + 924.505488);
});

t.test('tcpdump-tcp_header_heapoverflow.pcap: FCS bits masked off the link type', async (t) => {
  const bytes = fs.readFileSync(shared('tcpdump-tcp_header_heapoverflow.pcap'));
  t.equal(bytes.readUInt32LE(20), 0x30000001, 'raw link-type field');
  const cap = parseCapture(bytes, 'heapoverflow');
  t.equal(cap.linkType, 1);
  t.equal(cap.fcsLen, undefined, 'P bit (0x04000000) is clear, so no FCS length');
  t.equal(cap.snapLen, 46);
  t.same(cap.frames.map((f) => [f.data.length, f.origLen, f.tsSec, f.tsNsec]), [[46, 262144, 808464432, 999999000]]);
});

t.test('cs-http_ip4and6.pcapng: pcapng from Wireshark', async (t) => {
  const cap = readCaptureFile(shared('cs-http_ip4and6.pcapng'));
  t.equal(cap.format, 'pcapng');
  t.equal(cap.byteOrder, 'le');
  t.equal(cap.resolution, 'us');
  t.equal(cap.linkType, 1);
  t.equal(cap.snapLen, 65535);
  t.equal(cap.frames.length, 20);
  t.ok(cap.frames.every((f) => f.linkType === 1 && f.interfaceId === 0));
  const lo = Date.UTC(2000, 0, 1);
  const hi = Date.UTC(2030, 0, 1);
  t.ok(cap.frames.every((f) => f.tsMs > lo && f.tsMs < hi), 'timestamps between 2000 and 2030');
  t.ok(cap.frames.every((f, i) => i === 0 || f.tsMs >= cap.frames[i - 1]!.tsMs), 'timestamps non-decreasing');
  // Golden: first EPB has ts 1448215091400170 µs and 74 bytes.
  const f1 = cap.frames[0]!;
  t.same([f1.tsSec, f1.tsNsec, f1.data.length, f1.origLen], [1448215091, 400170000, 74, 74]);
  t.same([...cap.frames.map((f) => f.data.length)], [74, 74, 66, 143, 66, 557, 66, 66, 66, 66, 94, 94, 86, 170, 86, 577, 86, 86, 86, 86]);

  // Convert to classic pcap and let pcap-parser read it: same bytes and times.
  const w = new PcapWriter({ linkType: cap.linkType, snapLen: cap.snapLen });
  for (const f of cap.frames) w.addExact(f.data, 0, f.data.length, f.tsSec, f.tsNsec, f.origLen);
  const out = path.join(tmpDir(t), 'http.pcap');
  w.writeFile(out);
  const pp = await ppRead(out);
  t.equal(pp.error, undefined);
  t.equal(pp.packets.length, 20);
  t.ok(pp.packets.every((p, i) => p.data.equals(cap.frames[i]!.data) &&
    p.header.timestampSeconds * 1e9 + p.header.timestampMicroseconds * 1000 === cap.frames[i]!.tsSec * 1e9 + cap.frames[i]!.tsNsec),
  'pcap-parser reads the converted frames back equal');
});

// --- pcap-parser as a second oracle for classic µs pcap -------------------------------------

t.test('pcap-parser agrees on every classic capture it can read', async (t) => {
  const classicFiles = sharedFiles.filter((f) => f.endsWith('.pcap'));
  let compared = 0;
  for (const name of classicFiles) {
    const pp = await ppRead(shared(name));
    if (pp.error !== undefined) {
      // It reads neither ns pcap nor non-captures; our reader covers those on its own above.
      t.match(pp.error.message, /unknown magic number/, `${name}: pcap-parser cannot read it (${pp.error.message})`);
      continue;
    }
    // pcap-parser silently drops a truncated tail; compare against our allowTruncated frames.
    const cap = readCaptureFile(shared(name), { allowTruncated: true });
    const ours = cap.frames;
    const gh = pp.globalHeader!;
    t.equal(gh.snapshotLength, cap.snapLen, `${name}: snaplen`);
    t.equal(gh.linkLayerType & 0xffff, cap.linkType, `${name}: link type (pcap-parser reports the raw field ${gh.linkLayerType})`);
    t.equal(ours.length, pp.packets.length, `${name}: frame count`);
    let bad = '';
    for (let i = 0; i < Math.min(ours.length, pp.packets.length) && bad === ''; i++) {
      const a = ours[i]!;
      const b = pp.packets[i]!;
      if (!a.data.equals(b.data)) bad = `frame ${i + 1} bytes differ`;
      else if (a.data.length !== b.header.capturedLength) bad = `frame ${i + 1} caplen`;
      else if (a.origLen !== b.header.originalLength) bad = `frame ${i + 1} origLen`;
      else if (a.tsSec !== b.header.timestampSeconds || a.tsNsec !== b.header.timestampMicroseconds * 1000) bad = `frame ${i + 1} timestamp`;
    }
    t.equal(bad, '', `${name}: ${ours.length} frames equal bytes, lengths and timestamps`);
    compared++;
  }
  t.ok(compared >= 20, `compared ${compared} files`);
});

// --- classic pcap edge cases -----------------------------------------------------------------

t.test('classic pcap: byte orders, resolutions, header-only, FCS', async (t) => {
  const d1 = pattern(60, 1);
  const d2 = pattern(42, 2);
  for (const le of [true, false]) {
    for (const nano of [false, true]) {
      const bytes = classic(le, nano, 65535, 1, [
        { sec: 1700000000, frac: nano ? 123456789 : 123456, data: d1 },
        { sec: 1700000001, frac: nano ? 999999999 : 999999, data: d2, origLen: 1500 },
      ]);
      const cap = parseCapture(bytes, 'x.pcap');
      const tag = `${le ? 'le' : 'be'} ${nano ? 'ns' : 'us'}`;
      t.equal(cap.byteOrder, le ? 'le' : 'be', `${tag}: byte order`);
      t.equal(cap.resolution, nano ? 'ns' : 'us', `${tag}: resolution`);
      t.same(cap.frames.map((f) => [f.index, f.tsSec, f.tsNsec, f.data.length, f.origLen]), [
        [1, 1700000000, nano ? 123456789 : 123456000, 60, 60],
        [2, 1700000001, nano ? 999999999 : 999999000, 42, 1500],
      ], `${tag}: frames`);
      t.ok(cap.frames[0]!.data.equals(d1) && cap.frames[1]!.data.equals(d2), `${tag}: bytes`);
    }
  }

  const headerOnly = parseCapture(classic(true, false, 65535, 1, []), 'h.pcap');
  t.equal(headerOnly.frames.length, 0, 'header only: valid, zero frames');
  t.equal(headerOnly.truncatedAt, undefined);

  t.equal(parseCapture(classic(true, false, 65535, 0x24000001, []), 'f').fcsLen, 4, 'P bit + 2 words = 4-byte FCS');
  t.equal(parseCapture(classic(true, false, 65535, 0x24000001, []), 'f').linkType, 1);

  t.throws(() => parseCapture(Buffer.alloc(0), 'empty.pcap'), { code: 'ECAPTURE_NOT_A_CAPTURE', message: /^empty\.pcap: empty file/ });
  t.throws(() => parseCapture(Buffer.from([0xd4, 0xc3]), 'two'), { code: 'ECAPTURE_NOT_A_CAPTURE' });
  t.throws(() => parseCapture(classic(true, false, 65535, 1, []).subarray(0, 10), 'short-hdr'),
    { code: 'ECAPTURE_TRUNCATED', message: /short-hdr: pcap file header is cut short: 10 of 24 bytes/ });
  t.throws(() => parseCapture(classic(true, false, 65535, 1, []).subarray(0, 10), 'short-hdr', { allowTruncated: true }),
    { code: 'ECAPTURE_TRUNCATED' }, 'a cut file header throws even with allowTruncated');
  const v1 = classic(true, false, 65535, 1, []);
  v1.writeUInt16LE(1, 4);
  t.throws(() => parseCapture(v1, 'v1'), { code: 'ECAPTURE_UNSUPPORTED' });
  t.throws(() => parseCapture(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0]), 'x.pcap.gz'), { code: 'ECAPTURE_NOT_A_CAPTURE', message: /gzip/ });
  t.throws(() => parseCapture(Buffer.from('34cdb2a1020004000000000000000000ffff000001000000', 'hex'), 'k'), { code: 'ECAPTURE_UNSUPPORTED' });

  // A fraction >= 1 s (buggy writers) carries into the seconds.
  const carry = parseCapture(classic(true, false, 65535, 1, [{ sec: 10, frac: 2500000, data: d1 }]), 'c');
  t.same([carry.frames[0]!.tsSec, carry.frames[0]!.tsNsec], [12, 500000000]);
});

t.test('classic pcap: bad records name the frame and byte offset', async (t) => {
  const d = pattern(60, 3);
  const over = classic(true, false, 100, 1, [{ sec: 1, frac: 0, data: d }, { sec: 2, frac: 0, data: d, caplen: 101 }]);
  const e1 = captureErrorOf(() => parseCapture(over, 'over.pcap', { allowTruncated: true }));
  if (typeof e1 === 'string') { t.fail(e1); return; }
  t.equal(e1.code, 'ECAPTURE_BAD_RECORD');
  t.equal(e1.frame, 2);
  t.equal(e1.offset, 24 + 16 + 60);
  t.equal(e1.message, 'over.pcap: bad record for frame 2 at byte offset 100: captured length 101 exceeds the snapshot length 100');

  // snaplen 0 is treated as "no limit", but a 512 MiB record is still absurd.
  const absurd = classic(false, false, 0, 1, [{ sec: 1, frac: 0, data: d, caplen: 0x20000000 }]);
  t.throws(() => parseCapture(absurd, 'absurd.pcap'), { code: 'ECAPTURE_BAD_RECORD', message: /frame 1 at byte offset 24: captured length 536870912 is absurd/ });

  // Data cut short (not the header): truncated, frames before it kept with allowTruncated.
  const cut = classic(true, false, 65535, 1, [{ sec: 1, frac: 0, data: d }, { sec: 2, frac: 0, data: d }]).subarray(0, 24 + 76 + 16 + 10);
  t.throws(() => parseCapture(cut, 'cut.pcap'), { code: 'ECAPTURE_TRUNCATED', message: 'cut.pcap: file is cut short at byte offset 100 (frame 2): packet data has 10 of 60 bytes' });
  const partial = parseCapture(cut, 'cut.pcap', { allowTruncated: true });
  t.equal(partial.frames.length, 1);
  t.same(partial.truncatedAt, { frame: 2, offset: 100, message: 'packet data has 10 of 60 bytes' });
});

t.test('readCaptureFile: I/O errors become ECAPTURE_IO', async (t) => {
  const dir = tmpDir(t);
  const missing = path.join(dir, 'nope.pcap');
  t.throws(() => readCaptureFile(missing), { code: 'ECAPTURE_IO', message: `${missing}: cannot read capture file: no such file or directory (ENOENT)` });
  t.throws(() => readCaptureFile(dir), { code: 'ECAPTURE_IO', message: /is a directory \(EISDIR\)/ });
});

// --- pcapng built by hand ----------------------------------------------------------------------

t.test('pcapng: two sections (big- and little-endian), resolutions, skipped blocks, SPB, OPB', async (t) => {
  const be = new Ng(false);
  const le = new Ng(true);
  const d1 = pattern(60, 10);
  const d2 = pattern(54, 11);
  const d3 = pattern(33, 12);
  const d4 = pattern(70, 13);
  const d5 = pattern(200, 14);
  const d6 = pattern(1, 15);
  const file = Buffer.concat([
    // Section 1, big-endian: Ethernet, if_tsresol 9 (ns).
    be.shb(),
    be.idb(1, 0, [[2, Buffer.from('eth0')], [9, Buffer.from([9])]]),
    be.block(0x00000bad, Buffer.from([1, 2, 3, 4, 5])), // custom block: skipped
    be.block(4, be.u16(0), be.u16(0)), // name resolution block (end of records only): skipped
    be.epb(0, 1_700_000_000_123_456_789n, d1),
    be.block(5, be.u32(0), be.u32(0), be.u32(0)), // interface statistics: skipped
    // Section 2, little-endian: interfaces are numbered afresh.
    le.shb(),
    le.idb(113, 128, [[9, Buffer.from([0x8a])]]), // if_tsresol 2^-10 s
    le.idb(1, 65535), // default resolution 10^-6
    le.epb(0, (1_700_000_001n << 10n) + 512n, d2, 80), // 0.5 s
    le.epb(0, (1_700_000_001n << 10n) + 1n, d3), // 1/1024 s = 976562.5 ns, rounded down
    le.epb(1, 1_700_000_002_000_001n, d4),
    le.spb(300, d5.subarray(0, 128)), // SPB: interface 0, caplen = min(300, snaplen 128)
    le.opb(1, 1_700_000_003_000_002n, d6), // obsolete Packet Block
  ]);
  const cap = parseCapture(file, 'two-sections.pcapng');
  t.equal(cap.format, 'pcapng');
  t.equal(cap.byteOrder, 'be', 'byte order of the first section');
  t.equal(cap.resolution, 'ns', 'resolution of the first interface');
  t.equal(cap.linkType, 1);
  t.equal(cap.snapLen, 0);
  const rows = cap.frames.map((f: CaptureFrame) => [f.index, f.interfaceId, f.linkType, f.tsSec, f.tsNsec, f.data.length, f.origLen]);
  t.same(rows, [
    [1, 0, 1, 1700000000, 123456789, 60, 60],
    [2, 0, 113, 1700000001, 500000000, 54, 80],
    [3, 0, 113, 1700000001, 976562, 33, 33],
    [4, 1, 1, 1700000002, 1000, 70, 70],
    [5, 0, 113, 0, 0, 128, 300],
    [6, 1, 1, 1700000003, 2000, 1, 1],
  ]);
  t.ok(cap.frames[0]!.data.equals(d1) && cap.frames[1]!.data.equals(d2) && cap.frames[2]!.data.equals(d3) &&
    cap.frames[3]!.data.equals(d4) && cap.frames[4]!.data.equals(d5.subarray(0, 128)) && cap.frames[5]!.data.equals(d6), 'frame bytes');
  t.equal(cap.frames[0]!.tsMs, 1700000000 * 1000 + 123.456789, 'tsMs');

  // The same first section read on its own, and other resolutions.
  const msec = Buffer.concat([le.shb(), le.idb(1, 0, [[9, Buffer.from([3])]]), le.epb(0, 1_700_000_000_123n, d1)]);
  const mcap = parseCapture(msec, 'ms.pcapng');
  t.equal(mcap.resolution, '10^-3');
  t.same([mcap.frames[0]!.tsSec, mcap.frames[0]!.tsNsec], [1700000000, 123000000]);
  // 10^-10 s units: the 64-bit count exceeds 2^53 and has sub-nanosecond digits.
  const fine = Buffer.concat([le.shb(), le.idb(1, 0, [[9, Buffer.from([10])]]), le.epb(0, 17_000_000_001_234_567_891n, d1)]);
  const fcap = parseCapture(fine, 'fine.pcapng');
  t.equal(fcap.resolution, '10^-10');
  t.same([fcap.frames[0]!.tsSec, fcap.frames[0]!.tsNsec], [1700000000, 123456789], '10^-10 s rounded down to ns');

  // if_tsoffset (code 14): signed seconds added to every timestamp.
  const off = Buffer.concat([le.shb(), le.idb(1, 0, [[14, le.u64(1000n)]]), le.epb(0, 5_000_001n, d1)]);
  t.same([parseCapture(off, 'o').frames[0]!.tsSec, parseCapture(off, 'o').frames[0]!.tsNsec], [1005, 1000]);
});

t.test('pcapng: empty sections and header-only files', async (t) => {
  const le = new Ng(true);
  const onlyShb = parseCapture(le.shb(), 'shb.pcapng');
  t.same([onlyShb.frames.length, onlyShb.linkType, onlyShb.resolution], [0, -1, 'us']);
  const onlyIdb = parseCapture(Buffer.concat([le.shb(), le.idb(101, 1500)]), 'idb.pcapng');
  t.same([onlyIdb.frames.length, onlyIdb.linkType, onlyIdb.snapLen], [0, 101, 1500]);
});

t.test('pcapng: malformed blocks', async (t) => {
  const le = new Ng(true);
  const be = new Ng(false);
  const d = pattern(20, 5);
  const good = Buffer.concat([le.shb(), le.idb(1, 0), le.epb(0, 1n, d), le.epb(0, 2n, d)]);
  t.equal(parseCapture(good, 'g').frames.length, 2);
  const epb2At = 28 + 20 + 52; // SHB 28, IDB 20, EPB 32 + 20 bytes of data

  const trailer = Buffer.from(good);
  trailer.writeUInt32LE(48, epb2At + 52 - 4);
  t.throws(() => parseCapture(trailer, 'trailer.pcapng'), {
    code: 'ECAPTURE_BAD_RECORD',
    message: 'trailer.pcapng: bad record for frame 2 at byte offset 100: block type 0x6 total length 52 does not match its trailing copy 48',
  });

  const odd = Buffer.from(good);
  odd.writeUInt32LE(51, epb2At + 4);
  t.throws(() => parseCapture(odd, 'odd'), { code: 'ECAPTURE_BAD_RECORD', message: /must be a multiple of 4/ });
  const tiny = Buffer.from(good);
  tiny.writeUInt32LE(8, epb2At + 4);
  t.throws(() => parseCapture(tiny, 'tiny'), { code: 'ECAPTURE_BAD_RECORD', message: /at least 12/ });

  const noIface = Buffer.concat([le.shb(), le.idb(1, 0), le.epb(1, 1n, d)]);
  t.throws(() => parseCapture(noIface, 'noif'), { code: 'ECAPTURE_BAD_RECORD', message: /refers to interface 1 but the section has 1 interface/ });
  // Interfaces do not carry over into a new section.
  const reset = Buffer.concat([le.shb(), le.idb(1, 0), le.shb(), le.epb(0, 1n, d)]);
  t.throws(() => parseCapture(reset, 'reset'), { code: 'ECAPTURE_BAD_RECORD', message: /refers to interface 0 but the section has 0/ });

  const bigCap = Buffer.from(good);
  bigCap.writeUInt32LE(21, epb2At + 20);
  t.throws(() => parseCapture(bigCap, 'bigcap'), { code: 'ECAPTURE_BAD_RECORD', message: /captured length 21 does not fit in a block of 52 bytes/ });

  const snapped = Buffer.concat([le.shb(), le.idb(1, 10), le.epb(0, 1n, d)]);
  t.throws(() => parseCapture(snapped, 'snap'), { code: 'ECAPTURE_BAD_RECORD', message: /captured length 20 exceeds the snapshot length 10/ });

  const badOpt = Buffer.concat([le.shb(), le.block(1, le.u16(1), le.u16(0), le.u32(0), le.u16(9), le.u16(40))]);
  t.throws(() => parseCapture(badOpt, 'opt'), { code: 'ECAPTURE_BAD_RECORD', message: /option 9 \(length 40\) overruns/ });

  const bom = be.shb();
  bom.writeUInt32BE(0x11223344, 8);
  t.throws(() => parseCapture(bom, 'bom'), { code: 'ECAPTURE_NOT_A_CAPTURE', message: /byte-order magic is 11 22 33 44/ });
  const bom2 = Buffer.concat([le.shb(), bom]);
  t.throws(() => parseCapture(bom2, 'bom2'), { code: 'ECAPTURE_BAD_RECORD', message: /byte-order magic/ });

  t.throws(() => parseCapture(le.shb(2), 'v2'), { code: 'ECAPTURE_UNSUPPORTED', message: /version 2\.0/ });

  // Cut in the middle of the second EPB.
  const cut = good.subarray(0, epb2At + 26);
  t.throws(() => parseCapture(cut, 'cut.pcapng'), {
    code: 'ECAPTURE_TRUNCATED',
    message: 'cut.pcapng: file is cut short at byte offset 100 (frame 2): block type 0x6 has 26 of 52 bytes',
  });
  const partial = parseCapture(cut, 'cut.pcapng', { allowTruncated: true });
  t.equal(partial.frames.length, 1);
  t.same(partial.truncatedAt, { frame: 2, offset: 100, message: 'block type 0x6 has 26 of 52 bytes' });
  // Cut inside the first SHB: nothing to return, even with allowTruncated.
  t.throws(() => parseCapture(good.subarray(0, 20), 'shb', { allowTruncated: true }), { code: 'ECAPTURE_TRUNCATED', message: /section header block is cut short/ });
});

// --- writer ----------------------------------------------------------------------------------

t.test('writer: zero frames is a valid 24-byte header-only file', async (t) => {
  const w = new PcapWriter();
  t.equal(w.count, 0);
  const b = w.toBuffer();
  t.equal(b.toString('hex'), 'd4c3b2a1' + '02000400' + '00000000' + '00000000' + '00000400' + '01000000');
  const cap = parseCapture(b, 'empty');
  t.same([cap.format, cap.byteOrder, cap.resolution, cap.linkType, cap.snapLen, cap.frames.length], ['pcap', 'le', 'us', 1, 262144, 0]);
  t.equal(new PcapWriter({ nanosecond: true, linkType: 113, snapLen: 65535 }).toBuffer().toString('hex'),
    '4d3cb2a1' + '02000400' + '00000000' + '00000000' + 'ffff0000' + '71000000');

  const out = path.join(tmpDir(t), 'empty.pcap');
  w.writeFile(out);
  const pp = await ppRead(out);
  t.equal(pp.error, undefined);
  t.equal(pp.packets.length, 0);
  t.equal(pp.globalHeader?.snapshotLength, 262144);
});

t.test('writer: timestamp rounding and carry', async (t) => {
  const d = pattern(10, 0);
  const read = (w: PcapWriter): number[][] => parseCapture(w.toBuffer(), 'w').frames.map((f) => [f.tsSec, f.tsNsec]);
  const us = new PcapWriter();
  us.add(d, 0, 10, 1999.9999); // 1.9999999 s -> nearest µs is 2.000000
  us.add(d, 0, 10, 1999.9994); // -> 1.999999
  us.add(d, 0, 10, 0);
  us.add(d, 0, 10, 1700000000123.456); // today's clock
  us.addExact(d, 0, 10, 5, 999_999_500); // 999999.5 µs rounds up and carries
  us.addExact(d, 0, 10, 5, 999_999_499);
  t.same(read(us), [[2, 0], [1, 999999000], [0, 0], [1700000000, 123456000], [6, 0], [5, 999999000]]);

  const ns = new PcapWriter({ nanosecond: true });
  ns.add(d, 0, 10, 1999.9999999); // -> 2.000000000
  ns.add(d, 0, 10, 1.000001); // 1 ms + 1 ns
  ns.addExact(d, 0, 10, 1700000000, 123456789);
  t.same(read(ns), [[2, 0], [0, 1000001], [1700000000, 123456789]]);
});

t.test('writer: copies at add(), snaps to snapLen, validates arguments', async (t) => {
  const src = pattern(30, 9);
  const w = new PcapWriter({ snapLen: 16 });
  w.add(src, 5, 20, 1000); // 20 bytes from offset 5, snapped to 16; origLen 20
  w.add(src, 0, 4, 1000, 64);
  src.fill(0xee); // the caller reuses its buffer
  const cap = parseCapture(w.toBuffer(), 'w');
  t.equal(w.count, 2);
  t.same(cap.frames.map((f) => [f.data.length, f.origLen]), [[16, 20], [4, 64]]);
  t.ok(cap.frames[0]!.data.equals(pattern(30, 9).subarray(5, 21)), 'bytes copied at add() time');

  const err = { code: 'ERR_OUT_OF_RANGE' };
  t.throws(() => w.add(src, 20, 11, 0), err, 'range past the buffer');
  t.throws(() => w.add(src, -1, 1, 0), err);
  t.throws(() => w.add(src, 0, 1, -1), err, 'negative time');
  t.throws(() => w.add(src, 0, 1, NaN), err);
  t.throws(() => w.add(src, 0, 8, 0, 4), err, 'origLen below length');
  t.throws(() => w.addExact(src, 0, 1, 1, 1e9), err, 'tsNsec out of range');
  t.throws(() => w.add(src, 0, 1, 2 ** 32 * 1000), err, 'seconds beyond 2106');
  t.throws(() => new PcapWriter({ linkType: 0x10000 }), err);
  t.throws(() => new PcapWriter({ snapLen: 0 }), err);
  t.equal(w.count, 2, 'rejected frames are not counted');

  // Many frames: the buffer grows.
  const big = new PcapWriter();
  const frame = pattern(1514, 1);
  for (let i = 0; i < 100; i++) big.add(frame, 0, frame.length, i);
  const bigCap = parseCapture(big.toBuffer(), 'big');
  t.equal(bigCap.frames.length, 100);
  t.ok(bigCap.frames.every((f) => f.data.equals(frame)));
});

t.test('writer: rewriting real captures reproduces them byte for byte', async (t) => {
  let n = 0;
  for (const name of sharedFiles) {
    const bytes = fs.readFileSync(shared(name));
    let cap: Capture;
    try { cap = parseCapture(bytes, name); } catch { continue; } // not-a-capture, truncated
    if (cap.format !== 'pcap' || cap.byteOrder !== 'le' || bytes.readUInt32LE(20) !== cap.linkType) continue;
    const nano = cap.resolution === 'ns';
    const exact = new PcapWriter({ linkType: cap.linkType, snapLen: cap.snapLen, nanosecond: nano });
    for (const f of cap.frames) exact.addExact(f.data, 0, f.data.length, f.tsSec, f.tsNsec, f.origLen);
    t.ok(exact.toBuffer().equals(bytes), `${name}: addExact rewrite is identical`);
    if (!nano) {
      // The millisecond clock the packet path uses is precise enough for µs files.
      const viaMs = new PcapWriter({ linkType: cap.linkType, snapLen: cap.snapLen });
      for (const f of cap.frames) viaMs.add(f.data, 0, f.data.length, f.tsMs, f.origLen);
      t.ok(viaMs.toBuffer().equals(bytes), `${name}: add(tsMs) rewrite is identical`);
    }
    n++;
  }
  t.ok(n >= 15, `rewrote ${n} captures`);
});

t.test('writer: round trip through our reader and pcap-parser', async (t) => {
  const dir = tmpDir(t);
  const frames = [pattern(60, 1), pattern(1514, 2), pattern(42, 3), pattern(0, 4)];
  const times: [number, number][] = [[1700000000, 1000], [1700000000, 999999000], [1700000001, 0], [4000000000, 500000]];
  for (const nano of [false, true]) {
    const w = new PcapWriter({ nanosecond: nano, linkType: 1, snapLen: 65535 });
    frames.forEach((f, i) => w.addExact(f, 0, f.length, times[i]![0], times[i]![1] + (nano ? 7 : 0), f.length + i));
    const file = path.join(dir, nano ? 'ns.pcap' : 'us.pcap');
    w.writeFile(file);
    t.same(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind');
    const cap = readCaptureFile(file);
    t.equal(cap.resolution, nano ? 'ns' : 'us');
    t.same(cap.frames.map((f) => [f.tsSec, f.tsNsec, f.origLen]), times.map(([s, ns], i) => [s, ns + (nano ? 7 : 0), frames[i]!.length + i]));
    t.ok(cap.frames.every((f, i) => f.data.equals(frames[i]!)), `${nano ? 'ns' : 'us'}: bytes`);
    if (!nano) {
      const pp = await ppRead(file);
      t.equal(pp.error, undefined);
      t.same(pp.packets.map((p) => [p.header.timestampSeconds, p.header.timestampMicroseconds, p.header.capturedLength, p.header.originalLength]),
        times.map(([s, ns], i) => [s, ns / 1000, frames[i]!.length, frames[i]!.length + i]), 'pcap-parser reads the same records');
      t.ok(pp.packets.every((p, i) => p.data.equals(frames[i]!)), 'pcap-parser reads the same bytes');
    }
  }
});

t.test('writer: writeFile errors', async (t) => {
  const dir = tmpDir(t);
  const target = path.join(dir, 'missing-dir', 'x.pcap');
  const w = new PcapWriter();
  w.add(pattern(10, 1), 0, 10, 0);
  t.throws(() => w.writeFile(target), { code: 'ECAPTURE_IO', message: `${target}: cannot write capture file: no such file or directory (ENOENT)` });
  // Renaming onto a directory fails after the temporary file was written: it is removed.
  const asDir = path.join(dir, 'is-a-dir');
  fs.mkdirSync(asDir);
  t.throws(() => w.writeFile(asDir), { code: 'ECAPTURE_IO' });
  t.same(fs.readdirSync(dir).sort(), ['is-a-dir'], 'temporary file removed after a failed rename');
});

// --- truncation and corruption never escape as anything but CaptureError ----------------------

t.test('every cut of real captures gives frames or a CaptureError', async (t) => {
  const names = [
    'cs-ppa2e-arp_resolution.pcap', 'cs-ppa2e-tcp_handshake.pcap', 'pcapparser-be.pcap',
    'tcpdump-tcp-handshake-nano.pcap', 'tcpdump-tcp_header_heapoverflow.pcap', 'tcpdump-tcp_rst_data-trunc.pcap',
    'cs-http_ip4and6.pcapng', 'gopacket-test_ethernet.pcap', 'cs-ppa2e-synscan.pcap',
  ];
  for (const name of names) {
    const bytes = fs.readFileSync(shared(name));
    const full = parseCapture(bytes, name);
    const headerLen = full.format === 'pcap' ? 24 : bytes.readUInt32LE(4);
    const rnd = xorshift(0x5eed + bytes.length);
    // Every offset for small files; the first few kilobytes plus a random sample for big ones.
    const cuts: number[] = [];
    if (bytes.length <= 8192) for (let i = 0; i <= bytes.length; i++) cuts.push(i);
    else {
      for (let i = 0; i <= 4096; i++) cuts.push(i);
      for (let i = 0; i < 300; i++) cuts.push(4096 + (rnd() % (bytes.length - 4096)));
    }
    let problem = '';
    for (const n of cuts) {
      const cut = bytes.subarray(0, n);
      try {
        parseCapture(cut, name);
      } catch (err) {
        if (!(err instanceof CaptureError)) { problem = `cut at ${n}: ${String(err)}`; break; }
      }
      if (n < headerLen) continue;
      // Past the file header, allowTruncated always returns the whole frames before the cut.
      let cap: Capture;
      try {
        cap = parseCapture(cut, name, { allowTruncated: true });
      } catch (err) {
        problem = `cut at ${n} with allowTruncated: ${String(err)}`;
        break;
      }
      const bad = captureInvariantProblem(cap);
      if (bad !== undefined) { problem = `cut at ${n}: ${bad}`; break; }
      const expectFrames = full.frames.filter((f) => f.data.byteOffset - bytes.byteOffset + f.data.length <= n).length;
      if (cap.frames.length !== expectFrames && cap.frames.length !== expectFrames - 1) {
        problem = `cut at ${n}: ${cap.frames.length} frames, expected about ${expectFrames}`;
        break;
      }
      if (!cap.frames.every((f, i) => f.data.equals(full.frames[i]!.data) && f.tsNsec === full.frames[i]!.tsNsec)) {
        problem = `cut at ${n}: frames are not a prefix of the full capture`;
        break;
      }
      if (n === bytes.length && cap.truncatedAt !== undefined) { problem = 'whole file marked truncated'; break; }
    }
    t.equal(problem, '', `${name}: ${cuts.length} cuts`);
  }
});

t.test('random corruption gives frames or a CaptureError', async (t) => {
  const names = ['cs-ppa2e-tcp_handshake.pcap', 'pcapparser-be.pcap', 'tcpdump-tcp-handshake-nano.pcap', 'cs-http_ip4and6.pcapng'];
  const le = new Ng(true);
  const handmade = Buffer.concat([
    le.shb(), le.idb(1, 0, [[9, Buffer.from([0x8a])], [14, le.u64(-5n)]]), le.epb(0, 123456789n, pattern(30, 1)),
    le.spb(30, pattern(30, 2)), le.opb(0, 5n, pattern(9, 3)), le.block(5, le.u32(0)),
  ]);
  const inputs: [string, Buffer][] = names.map((n) => [n, fs.readFileSync(shared(n))]);
  inputs.push(['handmade.pcapng', handmade]);
  const rnd = xorshift(20240611);
  for (const [name, bytes] of inputs) {
    let problem = '';
    let returned = 0;
    for (let iter = 0; iter < 3000 && problem === ''; iter++) {
      const b = Buffer.from(bytes);
      const flips = 1 + (rnd() % 4);
      for (let k = 0; k < flips; k++) {
        const at = rnd() % b.length;
        // Mostly small changes, sometimes a whole random byte, sometimes a length-ish value.
        const mode = rnd() % 3;
        b[at] = mode === 0 ? b[at]! ^ (1 << (rnd() % 8)) : mode === 1 ? rnd() & 0xff : [0, 0xff, 0x7f, 0x80][rnd() % 4]!;
      }
      for (const allowTruncated of [false, true]) {
        try {
          const cap = parseCapture(b, name, { allowTruncated });
          const bad = captureInvariantProblem(cap);
          if (bad !== undefined) problem = `iteration ${iter}: ${bad}`;
          returned++;
        } catch (err) {
          if (!(err instanceof CaptureError)) problem = `iteration ${iter}: ${String(err)} ${(err as Error).stack ?? ''}`;
        }
      }
    }
    t.equal(problem, '', `${name}: 3000 corrupted copies (${returned} parses returned a capture)`);
  }
});

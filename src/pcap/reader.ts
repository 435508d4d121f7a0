// Capture file reader: classic pcap (both byte orders, µs and ns) and pcapng.
//
// References:
//   classic pcap — draft-ietf-opsawg-pcap ("PCAP Capture File Format"), libpcap pcap-savefile(5)
//   pcapng       — draft-ietf-opsawg-pcapng ("PCAP Next Generation (pcapng) Capture File Format")
//
// The whole file is parsed from one in-memory Buffer. Every multi-byte read is preceded by a
// length check on the record or block that contains it (check once where a record starts, then
// read), so a short or corrupt file ends in a CaptureError, never in a RangeError from Buffer.
// Readers below use plain byte arithmetic rather than Buffer#readUInt32LE, which re-validates
// and throws.

import * as fs from 'node:fs';
import { VipgateError } from '../control/errors';

/** One captured packet. */
export interface CaptureFrame {
  /** 1-based frame number, counted over the whole file as tshark numbers them. */
  index: number;
  /**
   * The captured bytes (caplen of them). A view (`subarray`) into the Buffer that was parsed,
   * not a copy: it stays valid as long as it is referenced, and it aliases the input, so callers
   * of parseCapture must not mutate that Buffer while they use the frames. Copy it (e.g.
   * `Buffer.from(frame.data)`) before editing a frame in place.
   */
  data: Buffer;
  /** Original length on the wire (may exceed data.length when the capture was snapped). */
  origLen: number;
  /** Seconds since the epoch (integer). */
  tsSec: number;
  /**
   * Nanoseconds within the second, integer in [0, 1e9). Exact for µs and ns files and for any
   * pcapng resolution that divides 1 s into a whole number of ns; for finer or binary
   * resolutions (e.g. if_tsresol 2^-10) it is rounded down to the nanosecond.
   */
  tsNsec: number;
  /** tsSec*1000 + tsNsec/1e6: the millisecond clock the packet path uses (fractional). */
  tsMs: number;
  /** LINKTYPE_* of this frame (pcapng: from its interface). */
  linkType: number;
  /** Interface the frame was captured on (pcapng: IDB index within its section; pcap: 0). */
  interfaceId: number;
}

/** Where a file that was cut short stops (only set with `allowTruncated`). */
export interface TruncatedAt {
  /** Number the first incomplete frame (or block) would have had. */
  frame: number;
  /** Byte offset in the file where the incomplete record or block starts. */
  offset: number;
  /** What is missing, e.g. "record header has 7 of 16 bytes". */
  message: string;
}

export interface Capture {
  /** The file name or path given to parseCapture / readCaptureFile. */
  file: string;
  format: 'pcap' | 'pcapng';
  /** Byte order of the file header (pcapng: of the first section). */
  byteOrder: 'le' | 'be';
  /**
   * Timestamp resolution: 'us' or 'ns'; for pcapng interfaces with another if_tsresol,
   * '10^-N' or '2^-N'. pcapng: of the first interface ('us' if the file has none).
   */
  resolution: 'us' | 'ns' | string;
  /**
   * LINKTYPE_* of the file (classic: the low 16 bits of the header field, with the FCS bits
   * masked off) or of the first pcapng interface; -1 for a pcapng file without any interface.
   */
  linkType: number;
  /** Snapshot length of the file header / first pcapng interface (0 = unlimited in pcapng). */
  snapLen: number;
  /**
   * Classic pcap only: bytes of FCS at the end of every frame, when the header says so
   * (P bit 0x04000000 set in the link-type field; FCS length in 16-bit words in bits 28..31).
   */
  fcsLen?: number;
  frames: CaptureFrame[];
  /** Set only when parsing with `allowTruncated` and the file ends in the middle of a record. */
  truncatedAt?: TruncatedAt;
}

export interface ParseOptions {
  /**
   * A file cut off mid-record (e.g. a capture still being written, or a copy that stopped
   * short) normally throws ECAPTURE_TRUNCATED. With this set, the complete frames before the
   * cut are returned and `capture.truncatedAt` says where it stopped. A file whose header is
   * itself incomplete still throws.
   */
  allowTruncated?: boolean;
}

/** Stable error codes; the message always starts with the file name and says what is wrong. */
export const CaptureErrorCode = {
  /** Neither a pcap nor a pcapng magic number (or an empty file). */
  NOT_A_CAPTURE: 'ECAPTURE_NOT_A_CAPTURE',
  /** A recognised format variant this reader does not read (e.g. pcap major version 1). */
  UNSUPPORTED: 'ECAPTURE_UNSUPPORTED',
  /** The file ends in the middle of its header, a record or a block. */
  TRUNCATED: 'ECAPTURE_TRUNCATED',
  /** A record or block is inconsistent (impossible length, unknown interface, ...). */
  BAD_RECORD: 'ECAPTURE_BAD_RECORD',
  /** The file could not be read or written (ENOENT, EACCES, EISDIR, ...). */
  IO: 'ECAPTURE_IO',
} as const;
export type CaptureErrorCode = (typeof CaptureErrorCode)[keyof typeof CaptureErrorCode];

export class CaptureError extends VipgateError {
  override readonly code: CaptureErrorCode;
  readonly file: string;
  /** Frame number the error is about, when it is about one. */
  readonly frame: number | undefined;
  /** Byte offset in the file of the record or block the error is about, when known. */
  readonly offset: number | undefined;

  constructor(
    code: CaptureErrorCode,
    file: string,
    message: string,
    where?: { frame?: number; offset?: number; cause?: unknown },
  ) {
    super(code, message, where?.cause === undefined ? undefined : { cause: where.cause });
    this.code = code;
    this.file = file;
    this.frame = where?.frame;
    this.offset = where?.offset;
  }
}

/**
 * Largest caplen accepted from any record: 256 MiB. libpcap's own limit is 256 KiB for most
 * link types; anything near this is a corrupt length field, and refusing it early keeps a bad
 * file from describing a multi-gigabyte "packet".
 */
export const MAX_CAPLEN = 256 * 1024 * 1024;

// --- byte access -----------------------------------------------------------------------------

function rd16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}

function rd32(b: Uint8Array, o: number, le: boolean): number {
  return le
    ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
    : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function hexBytes(b: Uint8Array, o: number, n: number): string {
  const out: string[] = [];
  for (let i = o; i < o + n && i < b.length; i++) out.push(b[i]!.toString(16).padStart(2, '0'));
  return out.join(' ');
}

/** First bytes of a file for an error message: `74 68 69 73 "this"`. */
function describeStart(b: Uint8Array): string {
  const n = Math.min(4, b.length);
  let ascii = '';
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    ascii += c >= 0x20 && c < 0x7f && c !== 0x22 ? String.fromCharCode(c) : '.';
  }
  return `${hexBytes(b, 0, n)} "${ascii}"`;
}

// --- magic numbers ---------------------------------------------------------------------------

// Classic pcap magic numbers as they appear when the first four bytes are read big-endian.
// The writer's native order is inferred from which form appears (draft-ietf-opsawg-pcap §4).
const PCAP_MAGIC_US_BE = 0xa1b2c3d4;
const PCAP_MAGIC_US_LE = 0xd4c3b2a1;
const PCAP_MAGIC_NS_BE = 0xa1b23c4d;
const PCAP_MAGIC_NS_LE = 0x4d3cb2a1;
// Alexey Kuznetzov's "modified" pcap (extra per-record fields); recognised only to say so.
const PCAP_MAGIC_KUZNETZOV_BE = 0xa1b2cd34;
const PCAP_MAGIC_KUZNETZOV_LE = 0x34cdb2a1;

// pcapng Section Header Block type. It reads the same in both byte orders on purpose, and its
// CR/LF bytes detect a file mangled by a text-mode transfer (draft-ietf-opsawg-pcapng §4.1).
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const PCAP_FILE_HEADER_LEN = 24;
const PCAP_RECORD_HEADER_LEN = 16;

// --- entry points ----------------------------------------------------------------------------

/** Parse a whole capture file held in memory. `file` names it in errors. */
export function parseCapture(bytes: Buffer, file: string, opts: ParseOptions = {}): Capture {
  if (bytes.length === 0) {
    throw new CaptureError(
      CaptureErrorCode.NOT_A_CAPTURE,
      file,
      `${file}: empty file (0 bytes), not a pcap or pcapng capture`,
    );
  }
  if (bytes.length < 4) {
    throw new CaptureError(
      CaptureErrorCode.NOT_A_CAPTURE,
      file,
      `${file}: not a pcap or pcapng capture (only ${bytes.length} bytes: ${describeStart(bytes)})`,
    );
  }
  const magic = rd32(bytes, 0, false);
  switch (magic) {
    case PCAP_MAGIC_US_BE:
      return parsePcap(bytes, file, false, false, opts);
    case PCAP_MAGIC_US_LE:
      return parsePcap(bytes, file, true, false, opts);
    case PCAP_MAGIC_NS_BE:
      return parsePcap(bytes, file, false, true, opts);
    case PCAP_MAGIC_NS_LE:
      return parsePcap(bytes, file, true, true, opts);
    case PCAPNG_SHB:
      return parsePcapng(bytes, file, opts);
    case PCAP_MAGIC_KUZNETZOV_BE:
    case PCAP_MAGIC_KUZNETZOV_LE:
      throw new CaptureError(
        CaptureErrorCode.UNSUPPORTED,
        file,
        `${file}: "modified" (Kuznetzov) pcap format is not supported; convert it with ` +
          `editcap -F pcap (first bytes ${describeStart(bytes)})`,
      );
    default: {
      const hint = bytes[0] === 0x1f && bytes[1] === 0x8b ? '; looks gzip-compressed, decompress it first' : '';
      throw new CaptureError(
        CaptureErrorCode.NOT_A_CAPTURE,
        file,
        `${file}: not a pcap or pcapng capture (first bytes ${describeStart(bytes)}${hint})`,
      );
    }
  }
}

/** Read and parse a capture file. I/O failures become CaptureError code ECAPTURE_IO. */
export function readCaptureFile(path: string, opts: ParseOptions = {}): Capture {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path);
  } catch (err) {
    throw ioError(path, 'cannot read capture file', err);
  }
  return parseCapture(bytes, path, opts);
}

/** Wrap a Node fs error as CaptureError(ECAPTURE_IO) with a message that says what to fix. */
export function ioError(path: string, what: string, err: unknown): CaptureError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const reason =
    code === 'ENOENT' ? 'no such file or directory'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'EISDIR' ? 'is a directory'
    : code === 'ENOTDIR' ? 'a component of the path is not a directory'
    : code === 'ENOSPC' ? 'no space left on device'
    : err instanceof Error ? err.message
    : String(err);
  return new CaptureError(
    CaptureErrorCode.IO,
    path,
    `${path}: ${what}: ${reason}${code !== undefined ? ` (${code})` : ''}`,
    { cause: err },
  );
}

// --- shared record handling ------------------------------------------------------------------

/**
 * Record the end of a truncated file: with allowTruncated, note it on the capture and let the
 * caller stop; otherwise throw ECAPTURE_TRUNCATED naming frame and offset.
 */
function cutShort(cap: Capture, opts: ParseOptions, frame: number, offset: number, message: string): void {
  if (opts.allowTruncated === true) {
    cap.truncatedAt = { frame, offset, message };
    return;
  }
  throw new CaptureError(
    CaptureErrorCode.TRUNCATED,
    cap.file,
    `${cap.file}: file is cut short at byte offset ${offset} (frame ${frame}): ${message}`,
    { frame, offset },
  );
}

function badRecord(file: string, frame: number, offset: number, message: string): CaptureError {
  return new CaptureError(
    CaptureErrorCode.BAD_RECORD,
    file,
    `${file}: bad record for frame ${frame} at byte offset ${offset}: ${message}`,
    { frame, offset },
  );
}

/** Check a record's caplen against the snapshot length (0 = unlimited) and MAX_CAPLEN. */
function checkCaplen(file: string, frame: number, offset: number, caplen: number, snapLen: number): void {
  if (caplen > MAX_CAPLEN) {
    throw badRecord(file, frame, offset, `captured length ${caplen} is absurd (limit ${MAX_CAPLEN})`);
  }
  if (snapLen !== 0 && caplen > snapLen) {
    throw badRecord(file, frame, offset, `captured length ${caplen} exceeds the snapshot length ${snapLen}`);
  }
}

// --- classic pcap ----------------------------------------------------------------------------

// File header (24 bytes, draft-ietf-opsawg-pcap §4), all fields in the writer's byte order:
//   0 magic u32 | 4 major u16 | 6 minor u16 | 8 reserved1 (thiszone) | 12 reserved2 (sigfigs)
//   16 snaplen u32 | 20 link-type-and-FCS u32
// Record header (16 bytes, §5): 0 ts_sec | 4 ts_usec or ts_nsec | 8 caplen | 12 origlen.

function parsePcap(b: Buffer, file: string, le: boolean, nano: boolean, opts: ParseOptions): Capture {
  if (b.length < PCAP_FILE_HEADER_LEN) {
    throw new CaptureError(
      CaptureErrorCode.TRUNCATED,
      file,
      `${file}: pcap file header is cut short: ${b.length} of ${PCAP_FILE_HEADER_LEN} bytes`,
      { offset: 0 },
    );
  }
  const major = rd16(b, 4, le);
  const minor = rd16(b, 6, le);
  // libpcap reads every 2.x file the same way; 1.x ("archaic") had a different record layout.
  if (major !== 2) {
    throw new CaptureError(
      CaptureErrorCode.UNSUPPORTED,
      file,
      `${file}: pcap version ${major}.${minor} is not supported (expected 2.x)`,
    );
  }
  const snapLen = rd32(b, 16, le);
  // Link-type field (libpcap pcap/pcap.h LT_* macros; draft-ietf-opsawg-pcap §4 "LinkType and
  // additional information"): bits 0..15 link type, 16..25 reserved, bit 26 (P) "FCS length
  // present", bit 27 reserved, bits 28..31 FCS length in 16-bit words. Some files carry
  // non-zero upper bits without P (tcpdump's tcp_header_heapoverflow.pcap: 0x30000001), so
  // the link type is always just the low 16 bits.
  const linkField = rd32(b, 20, le);
  const linkType = linkField & 0xffff;
  const cap: Capture = {
    file,
    format: 'pcap',
    byteOrder: le ? 'le' : 'be',
    resolution: nano ? 'ns' : 'us',
    linkType,
    snapLen,
    frames: [],
  };
  if ((linkField & 0x04000000) !== 0) cap.fcsLen = ((linkField >>> 28) & 0xf) * 2;

  const fracPerSec = nano ? 1e9 : 1e6;
  const nsPerFrac = nano ? 1 : 1000;
  let o = PCAP_FILE_HEADER_LEN;
  let frame = 1;
  while (o < b.length) {
    const left = b.length - o;
    if (left < PCAP_RECORD_HEADER_LEN) {
      cutShort(cap, opts, frame, o, `record header has ${left} of ${PCAP_RECORD_HEADER_LEN} bytes`);
      break;
    }
    const sec = rd32(b, o, le);
    const frac = rd32(b, o + 4, le);
    const caplen = rd32(b, o + 8, le);
    const origLen = rd32(b, o + 12, le);
    checkCaplen(file, frame, o, caplen, snapLen);
    const dataAt = o + PCAP_RECORD_HEADER_LEN;
    if (b.length - dataAt < caplen) {
      cutShort(cap, opts, frame, o, `packet data has ${b.length - dataAt} of ${caplen} bytes`);
      break;
    }
    // A fraction >= 1 s is out of spec but seen from buggy writers; carry it into the seconds
    // so tsNsec stays within [0, 1e9).
    const tsSec = sec + Math.floor(frac / fracPerSec);
    const tsNsec = (frac % fracPerSec) * nsPerFrac;
    cap.frames.push(makeFrame(frame, b.subarray(dataAt, dataAt + caplen), origLen, tsSec, tsNsec, linkType, 0));
    o = dataAt + caplen;
    frame++;
  }
  return cap;
}

// --- pcapng ----------------------------------------------------------------------------------

// Block types (draft-ietf-opsawg-pcapng §4, §10.1). Every other type is skipped by its length.
const BT_IDB = 0x00000001; // §4.2 Interface Description Block
const BT_OPB = 0x00000002; // Appendix A Packet Block (obsolete)
const BT_SPB = 0x00000003; // §4.4 Simple Packet Block
const BT_EPB = 0x00000006; // §4.3 Enhanced Packet Block

// Minimum total lengths: 8-byte header + fixed body + 4-byte trailing length.
const MIN_BLOCK = 12;
const MIN_SHB = 28; // + byte-order magic 4, major 2, minor 2, section length 8
const MIN_IDB = 20; // + link type 2, reserved 2, snaplen 4
const MIN_EPB = 32; // + interface 4, ts high 4, ts low 4, caplen 4, origlen 4
const MIN_SPB = 16; // + origlen 4
const MIN_OPB = 32; // + interface 2, drops 2, ts high 4, ts low 4, caplen 4, origlen 4

// IDB options (§4.2).
const OPT_ENDOFOPT = 0;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;

const NS_PER_SEC = 1_000_000_000n;

/** Per-interface state needed to decode packet blocks. */
interface Iface {
  linkType: number;
  snapLen: number;
  resolution: string;
  /** Timestamp units per second as BigInt (10^n or 2^n). */
  unitsBig: bigint;
  /** Units per second as a Number when it divides 1e9 exactly (fast exact path), else 0. */
  unitsNum: number;
  /** if_tsoffset: seconds added to every timestamp (§4.2), usually 0. */
  tsOffset: number;
}

function parsePcapng(b: Buffer, file: string, opts: ParseOptions): Capture {
  const cap: Capture = {
    file,
    format: 'pcapng',
    byteOrder: 'le',
    resolution: 'us',
    linkType: -1,
    snapLen: 0,
    frames: [],
  };
  let le = true;
  let ifaces: Iface[] = [];
  let firstIface = true;
  let frame = 1;
  let o = 0;

  while (o < b.length) {
    const left = b.length - o;
    // Byte order comes from the SHB's byte-order magic (§4.1), which sits after the type and
    // length, so a section's first block needs 12 bytes before its length can be read.
    const isShb = left >= 4 && rd32(b, o, false) === PCAPNG_SHB;
    const need = isShb ? MIN_BLOCK : 8;
    if (left < need) {
      if (o === 0) throw shbCutShort(file, `${left} of ${need} bytes`);
      cutShort(cap, opts, frame, o, `block header has ${left} of ${need} bytes`);
      break;
    }
    if (isShb) {
      const bom = rd32(b, o + 8, false);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = false;
      else if (bom === 0x4d3c2b1a) le = true;
      else if (o === 0) {
        throw new CaptureError(
          CaptureErrorCode.NOT_A_CAPTURE,
          file,
          `${file}: not a pcap or pcapng capture (starts with the pcapng block type 0a 0d 0d 0a ` +
            `but the byte-order magic is ${hexBytes(b, 8, 4)}, expected 1a 2b 3c 4d or 4d 3c 2b 1a; ` +
            `a text-mode transfer may have altered it)`,
        );
      } else {
        throw badRecord(file, frame, o, `section header block has byte-order magic ${hexBytes(b, o + 8, 4)}`);
      }
      if (o === 0) cap.byteOrder = le ? 'le' : 'be';
    }
    const type = rd32(b, o, le);
    const total = rd32(b, o + 4, le);
    // §3.1: Block Total Length counts the whole block, is a multiple of 4 and is repeated at
    // its end. A wrong length makes every later block unreadable, so it is an error rather than
    // something to skip.
    if (total < MIN_BLOCK || total % 4 !== 0) {
      throw badRecord(file, frame, o, `block type 0x${type.toString(16)} has total length ${total} ` +
        `(must be a multiple of 4 and at least ${MIN_BLOCK})`);
    }
    if (total > left) {
      if (o === 0) throw shbCutShort(file, `${left} of ${total} bytes`);
      cutShort(cap, opts, frame, o, `block type 0x${type.toString(16)} has ${left} of ${total} bytes`);
      break;
    }
    const trailer = rd32(b, o + total - 4, le);
    if (trailer !== total) {
      throw badRecord(file, frame, o, `block type 0x${type.toString(16)} total length ${total} ` +
        `does not match its trailing copy ${trailer}`);
    }
    const end = o + total - 4; // end of the block body

    if (isShb) {
      if (total < MIN_SHB) throw badRecord(file, frame, o, `section header block is ${total} bytes, minimum ${MIN_SHB}`);
      const major = rd16(b, o + 12, le);
      const minor = rd16(b, o + 14, le);
      // §4.1: a reader must not read a section with an unknown major version.
      if (major !== 1) {
        throw new CaptureError(
          CaptureErrorCode.UNSUPPORTED,
          file,
          `${file}: pcapng section at byte offset ${o} has version ${major}.${minor} (expected 1.x)`,
          { frame, offset: o },
        );
      }
      // Interface ids are numbered per section (§4.2), so a new section starts afresh.
      ifaces = [];
    } else if (type === BT_IDB) {
      if (total < MIN_IDB) throw badRecord(file, frame, o, `interface description block is ${total} bytes, minimum ${MIN_IDB}`);
      const iface = parseIdb(b, file, frame, o, end, le);
      ifaces.push(iface);
      if (firstIface) {
        firstIface = false;
        cap.linkType = iface.linkType;
        cap.snapLen = iface.snapLen;
        cap.resolution = iface.resolution;
      }
    } else if (type === BT_EPB || type === BT_OPB || type === BT_SPB) {
      const f = parsePacketBlock(b, file, frame, o, total, type, le, ifaces);
      cap.frames.push(f);
      frame++;
    }
    // Any other block (Name Resolution 4, Interface Statistics 5, Decryption Secrets 10,
    // custom 0xBAD / 0x40000BAD, systemd journal 9, ...) carries no frames: skip it.
    o += total;
  }
  return cap;
}

/** The first Section Header Block is the file header: without it there is nothing to return. */
function shbCutShort(file: string, what: string): CaptureError {
  return new CaptureError(
    CaptureErrorCode.TRUNCATED,
    file,
    `${file}: pcapng section header block is cut short: ${what}`,
    { offset: 0 },
  );
}

function parseIdb(b: Buffer, file: string, frame: number, o: number, end: number, le: boolean): Iface {
  const iface: Iface = {
    linkType: rd16(b, o + 8, le),
    snapLen: rd32(b, o + 12, le),
    resolution: 'us',
    unitsBig: 1_000_000n,
    unitsNum: 1_000_000,
    tsOffset: 0,
  };
  // Options (§3.5): code u16, length u16, value padded to a multiple of 4; opt_endofopt ends.
  let p = o + 16;
  while (end - p >= 4) {
    const code = rd16(b, p, le);
    const len = rd16(b, p + 2, le);
    if (code === OPT_ENDOFOPT) break;
    const padded = (len + 3) & ~3;
    if (padded > end - p - 4) {
      throw badRecord(file, frame, o, `interface description option ${code} (length ${len}) overruns the block`);
    }
    const v = p + 4;
    if (code === IF_TSRESOL && len >= 1) {
      // §4.2 if_tsresol: high bit clear -> units of 10^-n s; set -> units of 2^-n s.
      const r = b[v]!;
      const n = r & 0x7f;
      if ((r & 0x80) === 0) {
        iface.unitsBig = 10n ** BigInt(n);
        iface.resolution = n === 6 ? 'us' : n === 9 ? 'ns' : `10^-${n}`;
      } else {
        iface.unitsBig = 1n << BigInt(n);
        iface.resolution = `2^-${n}`;
      }
      iface.unitsNum = iface.unitsBig <= NS_PER_SEC && NS_PER_SEC % iface.unitsBig === 0n ? Number(iface.unitsBig) : 0;
    } else if (code === IF_TSOFFSET && len >= 8) {
      // §4.2 if_tsoffset: signed 64-bit seconds to add to every timestamp of the interface.
      const hi = rd32(b, le ? v + 4 : v, le);
      const lo = rd32(b, le ? v : v + 4, le);
      iface.tsOffset = Number(BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)));
    }
    p = v + padded;
  }
  return iface;
}

function parsePacketBlock(
  b: Buffer, file: string, frame: number, o: number, total: number, type: number, le: boolean, ifaces: Iface[],
): CaptureFrame {
  let ifid: number;
  let tsHi = 0;
  let tsLo = 0;
  let caplen: number;
  let origLen: number;
  let dataAt: number;
  const room = total - 4; // offset of the trailing length within the block
  const name = type === BT_EPB ? 'enhanced packet block' : type === BT_OPB ? 'packet block' : 'simple packet block';

  if (type === BT_SPB) {
    // §4.4: no interface id (always interface 0), no timestamp, no captured length: the
    // captured length is min(original length, SnapLen of interface 0), and the data must fit.
    if (total < MIN_SPB) throw badRecord(file, frame, o, `${name} is ${total} bytes, minimum ${MIN_SPB}`);
    ifid = 0;
    origLen = rd32(b, o + 8, le);
    dataAt = o + 12;
    const iface0 = ifaces[0];
    const snap = iface0 === undefined || iface0.snapLen === 0 ? Infinity : iface0.snapLen;
    caplen = Math.min(origLen, snap);
  } else {
    const min = type === BT_EPB ? MIN_EPB : MIN_OPB;
    if (total < min) throw badRecord(file, frame, o, `${name} is ${total} bytes, minimum ${min}`);
    // EPB §4.3: interface u32. Obsolete Packet Block (Appendix A): interface u16, drops u16.
    ifid = type === BT_EPB ? rd32(b, o + 8, le) : rd16(b, o + 8, le);
    tsHi = rd32(b, o + 12, le);
    tsLo = rd32(b, o + 16, le);
    caplen = rd32(b, o + 20, le);
    origLen = rd32(b, o + 24, le);
    dataAt = o + 28;
  }

  const iface = ifaces[ifid];
  if (iface === undefined) {
    throw badRecord(file, frame, o, `${name} refers to interface ${ifid} but the section has ` +
      `${ifaces.length} interface description block(s) before it`);
  }
  if (caplen > room - (dataAt - o)) {
    throw badRecord(file, frame, o, `${name} captured length ${caplen} does not fit in a block of ${total} bytes`);
  }
  checkCaplen(file, frame, o, caplen, iface.snapLen);

  const [tsSec, tsNsec] = type === BT_SPB ? [0, 0] : splitTimestamp(tsHi, tsLo, iface);
  return makeFrame(frame, b.subarray(dataAt, dataAt + caplen), origLen, tsSec, tsNsec, iface.linkType, ifid);
}

function makeFrame(index: number, data: Buffer, origLen: number, tsSec: number, tsNsec: number, linkType: number, interfaceId: number): CaptureFrame {
  return { index, data, origLen, tsSec, tsNsec, tsMs: tsSec * 1000 + tsNsec / 1e6, linkType, interfaceId };
}

/**
 * Split a pcapng 64-bit timestamp (count of 1/units s since the epoch, §4.3) into whole seconds
 * and nanoseconds. µs and ns timestamps of the present day exceed 2^53 only in ns, so the
 * Number path is taken when the count is a safe integer and 1e9 is a multiple of the unit;
 * otherwise BigInt. Sub-nanosecond and binary fractions are rounded down to the nanosecond.
 */
function splitTimestamp(hi: number, lo: number, iface: Iface): [number, number] {
  const v = hi * 0x1_0000_0000 + lo;
  let sec: number;
  let nsec: number;
  if (iface.unitsNum !== 0 && v <= Number.MAX_SAFE_INTEGER) {
    const u = iface.unitsNum;
    sec = Math.floor(v / u);
    let rem = v - sec * u;
    // v/u is rounded to a double; correct a quotient that came out one too high or low.
    if (rem < 0) { sec--; rem += u; } else if (rem >= u) { sec++; rem -= u; }
    nsec = rem * (1e9 / u);
  } else {
    const big = (BigInt(hi) << 32n) | BigInt(lo);
    const u = iface.unitsBig;
    sec = Number(big / u);
    nsec = Number(((big % u) * NS_PER_SEC) / u);
  }
  return [sec + iface.tsOffset, nsec];
}

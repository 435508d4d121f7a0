// The shared-state region (issue 9): one file per interface and network namespace under /dev/shm,
// mapped by the supervisor and by every packet worker, so flows outlive any vipgate process.
//
//   region header (4 KiB) | StateViews (src/dataplane/state.ts, unchanged inside) | table banks (src/shm/banks.ts)
//
// The header says what shaped the region (interface, flow and neighbour capacities, hash seed,
// sizes and offsets of the parts, the state layout version) and who made it when; a process checks
// it before trusting anything after it. Its magic is written last (after a release store of every
// other field and of the state's own header), so a header whose magic is still zero was never
// finished: nothing can have been written through it, and openRegion makes it again. A checksum
// over the shape fields catches a header overwritten in place. Everything that differs from what
// this vipgate would make is refused with the difference and what to do (Envoy's hot restart does
// the same with its shared memory's version and size), never read as something it is not.
//
// The hash seed of an existing region wins over the config's: its flows are hashed with it.
// Timeouts are not shape: the supervisor rewrites them on attach.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { VipgateError } from '../control/errors';
import { instanceName } from '../control/instance-lock';
import { StateViews, StateOptions, stateSize, initState, attachState, setTimeouts, STATE_LAYOUT_VERSION } from '../dataplane/state';
import { mapFile, unmapFile, shmAvailable } from '../../native-bindings/shm';
import { scanRecords, IntegrityReport } from './integrity';

/** Where regions live: tmpfs, so the pages are the file (no disk I/O) and a reboot clears them. */
export const REGION_DIR = '/dev/shm';
export const REGION_MAGIC = 0x56475352; // "VGSR"
/** Version of this file's layout (the header and where the parts go). The state's own layout has its version too. */
export const REGION_VERSION = 1;
export const HEADER_BYTES = 4096;

// Header, u32 words (exported for the tests that forge headers)
export const W_MAGIC = 0, W_VERSION = 1, W_HEADER_BYTES = 2, W_STATE_VERSION = 3, W_FLOW_CAP = 4, W_NEIGH_CAP = 5, W_SEED = 6;
/** PID of the process writing the packet path's state (the worker), 0 = none. Not covered by the checksum. */
const W_WRITER = 7;
export const W_CHECKSUM = 8;
const W_IFACE_LEN = 9, W_VERSION_LEN = 10;
// Header, f64 slots (byte 64 on)
const D_TOTAL = 8, D_STATE_OFF = 9, D_STATE_BYTES = 10, D_BANKS_OFF = 11, D_BANKS_BYTES = 12, D_CREATED = 13;
// Header, strings (UTF-8)
const IFACE_AT = 128, IFACE_MAX = 32, VERSION_AT = 160, VERSION_MAX = 64;
/** Bytes of the header in use (the checksum covers them, except the magic, writer and checksum words). */
const HEADER_USED = 224;

export interface RegionShape { iface: string; flowCapacity: number; neighbourCapacity: number; seed: number }
export type RegionTimeouts = Pick<StateOptions, 'halfOpenTimeoutMs' | 'establishedTimeoutMs' | 'closingTimeoutMs' | 'neighbourTtlMs'>;

export interface Region {
  path: string;
  bytes: number;
  /** The region layout version (REGION_VERSION) and the state layout version inside it. */
  layoutVersion: number;
  stateLayoutVersion: number;
  /** True when this call made the region (absent, --fresh-state, or an unfinished one replaced). */
  created: boolean;
  /** Why an existing file was replaced without being asked (a header never finished); null otherwise. */
  replaced: string | null;
  createdAt: number;
  createdBy: string;
  /** The shape read from the region (its seed wins over the config's). */
  shape: RegionShape;
  state: StateViews;
  /** Where the table banks go (src/shm/banks.ts: new BankWriter(memory, offset)). */
  banks: { memory: ArrayBuffer; offset: number; bytes: number };
  /** PID of the process writing the state (set by the worker when it starts forwarding), 0 = none. */
  readonly writer: number;
  setWriter(pid: number): void;
  /**
   * Check every flow and neighbour record and repair or drop what cannot be trusted (see
   * integrity.ts); recount the gauges. Only the process about to be the state's one writer may
   * call it, before it writes: a worker that is let go, or one process running everything.
   */
  checkRecords(): IntegrityReport;
  /** Unmap (the file stays). Views over the region read as empty afterwards. */
  close(): void;
}

export function regionPath(iface: string, dir: string = REGION_DIR): string {
  return path.join(dir, `vipgate-${instanceName(iface)}.state`);
}

interface Layout { total: number; stateOffset: number; stateBytes: number; banksOffset: number; banksBytes: number }

function layoutFor(shape: Pick<RegionShape, 'flowCapacity' | 'neighbourCapacity'>, banksBytes: number): Layout {
  const stateBytes = stateSize(shape);
  // Banks start on a page of their own: the writer's bank pages and the packet path's flow pages never share one.
  const banksOffset = Math.ceil((HEADER_BYTES + stateBytes) / 4096) * 4096;
  return { total: banksOffset + Math.ceil(banksBytes / 4096) * 4096, stateOffset: HEADER_BYTES, stateBytes, banksOffset, banksBytes };
}

/** The region's size for this shape: what `bytes / flowCapacity` per flow costs (README "Shared state"). */
export function regionSize(shape: Pick<RegionShape, 'flowCapacity' | 'neighbourCapacity'>, banksBytes: number): number {
  return layoutFor(shape, banksBytes).total;
}

function fnv1a(b: Uint8Array, start: number, skipFrom: number, skipTo: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    if (i >= skipFrom && i < skipTo) continue;
    h ^= b[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** FNV-1a over the header's fields after the magic (written last), except the writer and checksum words. */
export function headerChecksum(b: Uint8Array): number {
  return fnv1a(b, 4, W_WRITER * 4, (W_CHECKSUM + 1) * 4, HEADER_USED);
}

function readString(b: Uint8Array, at: number, len: number, max: number): string {
  return Buffer.from(b.buffer, b.byteOffset + at, Math.min(len, max)).toString('utf8');
}

function writeString(b: Uint8Array, at: number, s: string, max: number): number {
  const bytes = Buffer.from(s, 'utf8').subarray(0, max);
  b.set(bytes, at);
  return bytes.length;
}

function corrupt(file: string, what: string): VipgateError {
  return new VipgateError('ESHM_CORRUPT', `shared state ${file}: ${what}; it cannot be trusted: start with --fresh-state to discard it (cuts every flow through it)`);
}

function mismatch(file: string, what: string, orElse: string): VipgateError {
  return new VipgateError('ESHM_MISMATCH', `shared state ${file}: ${what}; start with --fresh-state to discard it (cuts every flow through it), or ${orElse}`);
}

interface Header {
  u32: Uint32Array; f64: Float64Array; u8: Uint8Array;
}

function headerViews(buf: ArrayBuffer): Header {
  return { u32: new Uint32Array(buf, 0, HEADER_BYTES / 4), f64: new Float64Array(buf, 0, HEADER_BYTES / 8), u8: new Uint8Array(buf, 0, HEADER_BYTES) };
}

/**
 * Check the header of a mapped region against itself and the file's size (not against any
 * config): returns its layout, or throws ESHM_CORRUPT / ESHM_MISMATCH. 'incomplete' when the
 * header was never finished (magic still zero).
 */
function checkHeader(file: string, buf: ArrayBuffer, fileBytes: number): { h: Header; shape: RegionShape; layout: Layout; createdAt: number; createdBy: string } | 'incomplete' {
  if (fileBytes < HEADER_BYTES) throw corrupt(file, `the file is ${fileBytes} bytes, smaller than a region header (${HEADER_BYTES}): truncated`);
  const h = headerViews(buf);
  const magic = Atomics.load(h.u32, W_MAGIC);
  if (magic === 0) return 'incomplete';
  if (magic !== REGION_MAGIC) throw corrupt(file, `it does not start with a vipgate region header (magic 0x${magic.toString(16)}, expected 0x${REGION_MAGIC.toString(16)})`);
  const createdBy = readString(h.u8, VERSION_AT, h.u32[W_VERSION_LEN]!, VERSION_MAX);
  const createdAt = h.f64[D_CREATED]!;
  const made = `made by vipgate ${createdBy || '(unknown)'} at ${Number.isFinite(createdAt) ? new Date(createdAt).toISOString() : '(unknown time)'}`;
  if (h.u32[W_VERSION] !== REGION_VERSION) {
    throw mismatch(file, `region layout version ${h.u32[W_VERSION]} in the file (${made}), ${REGION_VERSION} in this vipgate`, `run the vipgate version that made it`);
  }
  if (h.u32[W_CHECKSUM] !== headerChecksum(h.u8)) throw corrupt(file, 'its header checksum does not match its contents (the header was overwritten)');
  if (h.u32[W_HEADER_BYTES] !== HEADER_BYTES) throw corrupt(file, `header size ${h.u32[W_HEADER_BYTES]} is not ${HEADER_BYTES}`);
  if (h.u32[W_STATE_VERSION] !== STATE_LAYOUT_VERSION) {
    throw mismatch(file, `state layout version ${h.u32[W_STATE_VERSION]} in the file (${made}), ${STATE_LAYOUT_VERSION} in this vipgate`, `run the vipgate version that made it`);
  }
  const shape: RegionShape = {
    iface: readString(h.u8, IFACE_AT, h.u32[W_IFACE_LEN]!, IFACE_MAX),
    flowCapacity: h.u32[W_FLOW_CAP]!, neighbourCapacity: h.u32[W_NEIGH_CAP]!, seed: h.u32[W_SEED]!,
  };
  const layout: Layout = {
    total: h.f64[D_TOTAL]!, stateOffset: h.f64[D_STATE_OFF]!, stateBytes: h.f64[D_STATE_BYTES]!,
    banksOffset: h.f64[D_BANKS_OFF]!, banksBytes: h.f64[D_BANKS_BYTES]!,
  };
  if (layout.total !== fileBytes) {
    throw corrupt(file, `the file is ${fileBytes} bytes but its header says ${layout.total} (truncated, or resized by something other than vipgate)`);
  }
  const expect = layoutFor(shape, layout.banksBytes);
  if (layout.stateOffset !== expect.stateOffset || layout.stateBytes !== expect.stateBytes || layout.banksOffset !== expect.banksOffset || layout.total !== expect.total) {
    throw corrupt(file, `its parts (state at ${layout.stateOffset}, ${layout.stateBytes} bytes; banks at ${layout.banksOffset}) do not fit the shape it records (${shape.flowCapacity} flows, ${shape.neighbourCapacity} neighbours)`);
  }
  return { h, shape, layout, createdAt, createdBy };
}

function mapState(file: string, buf: ArrayBuffer, shape: RegionShape, layout: Layout): StateViews {
  let state: StateViews;
  try {
    state = attachState(buf, layout.stateOffset);
  } catch (e) {
    throw corrupt(file, `its state part is not valid (${(e as Error).message})`);
  }
  if (state.flowCapacity !== shape.flowCapacity || state.neighbourCapacity !== shape.neighbourCapacity || state.seed !== shape.seed) {
    throw corrupt(file, `its state part (${state.flowCapacity} flows, ${state.neighbourCapacity} neighbours, seed ${state.seed}) disagrees with its header (${shape.flowCapacity}, ${shape.neighbourCapacity}, ${shape.seed})`);
  }
  return state;
}

function regionOf(file: string, m: { buffer: ArrayBuffer; bytes: number }, o: {
  created: boolean; replaced: string | null; h: Header; shape: RegionShape; layout: Layout; createdAt: number; createdBy: string; state: StateViews;
}): Region {
  const { h, layout, state } = o;
  return {
    path: file, bytes: m.bytes, layoutVersion: REGION_VERSION, stateLayoutVersion: STATE_LAYOUT_VERSION,
    created: o.created, replaced: o.replaced, createdAt: o.createdAt, createdBy: o.createdBy, shape: o.shape, state,
    banks: { memory: m.buffer, offset: layout.banksOffset, bytes: layout.banksBytes },
    get writer() { return h.u32.length ? Atomics.load(h.u32, W_WRITER) : 0; },
    setWriter(pid: number) { Atomics.store(h.u32, W_WRITER, pid >>> 0); },
    checkRecords: () => scanRecords(state),
    close() { unmapFile(m.buffer); },
  };
}

function unavailable(): VipgateError | null {
  const a = shmAvailable();
  return a.ok ? null : new VipgateError('ESHM_UNAVAILABLE', `shared state: ${a.why}`);
}

function mapError(file: string, e: unknown): VipgateError {
  const err = e as Error & { code?: string };
  const dir = path.dirname(file);
  const hint = err.code === 'ENOSPC' || err.code === 'ENOMEM' ? ` (${dir} has no room for it: see df ${dir}; give it more (docker: --shm-size), or a smaller flows.capacity needs less)`
    : err.code === 'EACCES' || err.code === 'EPERM' ? ' (run vipgate as the user that made it, or remove it)'
    : err.code === 'ENOENT' && !fs.existsSync(dir) ? ` (${dir} does not exist: create it, or mount a tmpfs there, or set shm_dir: in the config)` : '';
  // The addon's message names the file already ("shm: cannot open /dev/shm/...: ...").
  const what = /^shm: /.test(err.message) ? err.message.replace(/^shm: /, '') : `${file}: ${err.message}`;
  return new VipgateError('ESHM_UNAVAILABLE', `shared state: ${what}${hint}`, { cause: e });
}

/**
 * Supervisor: make the region (absent, or `fresh`: the caller said to discard it) or attach an
 * existing one after checking it against `shape`. `banksBytes` is banks.ts's banksSize(). Throws
 * VipgateError ESHM_MISMATCH (made for another interface, capacity, layout: what differs and
 * what to do), ESHM_CORRUPT (not trustworthy), ESHM_UNAVAILABLE (no addon, no /dev/shm space).
 * Does not scan the records: a worker may still be writing them (an upgrade); see checkRecords.
 */
export function openRegion(o: { path: string; shape: RegionShape; timeouts: RegionTimeouts; fresh: boolean; version: string; banksBytes: number; now?: number }): Region {
  const na = unavailable();
  if (na) throw na;
  const file = o.path;
  if (Buffer.byteLength(o.shape.iface) > IFACE_MAX) throw new VipgateError('ESHM_UNAVAILABLE', `shared state: interface name "${o.shape.iface}" is longer than ${IFACE_MAX} bytes`);
  if (o.fresh) {
    try { fs.unlinkSync(file); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw mapError(file, e); }
  }
  const want = layoutFor(o.shape, o.banksBytes);
  let m: { buffer: ArrayBuffer; created: boolean; bytes: number };
  try { m = mapFile(file, want.total, { create: true }); } catch (e) { throw mapError(file, e); }
  let replaced: string | null = null;
  if (!m.created) {
    let checked: ReturnType<typeof checkHeader>;
    try {
      checked = checkHeader(file, m.buffer, m.bytes);
    } catch (e) { unmapFile(m.buffer); throw e; }
    if (checked === 'incomplete') {
      // Never finished (its maker died while making it, before any flow could be written): make it again.
      unmapFile(m.buffer);
      replaced = 'its header was never finished (a vipgate was stopped while making it): made again';
      fs.unlinkSync(file);
      try { m = mapFile(file, want.total, { create: true }); } catch (e) { throw mapError(file, e); }
    } else {
      const { shape, layout } = checked;
      const differs: string[] = [];
      if (shape.iface !== o.shape.iface) differs.push(`interface "${shape.iface}" in the file, "${o.shape.iface}" in the config`);
      if (shape.flowCapacity !== o.shape.flowCapacity) differs.push(`flow capacity ${shape.flowCapacity} in the file, ${o.shape.flowCapacity} in the config`);
      if (shape.neighbourCapacity !== o.shape.neighbourCapacity) differs.push(`neighbour capacity ${shape.neighbourCapacity} in the file, ${o.shape.neighbourCapacity} in the config`);
      if (layout.banksBytes !== o.banksBytes) differs.push(`table banks of ${layout.banksBytes} bytes in the file, ${o.banksBytes} in this vipgate`);
      if (differs.length) {
        unmapFile(m.buffer);
        throw mismatch(file, differs.join('; '), 'keep the config (and vipgate version) that made it');
      }
      let state: StateViews;
      try { state = mapState(file, m.buffer, shape, layout); } catch (e) { unmapFile(m.buffer); throw e; }
      setTimeouts(state.times, o.timeouts);
      return regionOf(file, m, { created: false, replaced: null, ...checked, state });
    }
  }
  if (m.bytes !== want.total) {
    unmapFile(m.buffer);
    throw corrupt(file, `it was made ${m.bytes} bytes instead of ${want.total}`);
  }
  // A new region: every field of the header and the state, then the magic last (release store).
  const h = headerViews(m.buffer);
  h.u32[W_VERSION] = REGION_VERSION;
  h.u32[W_HEADER_BYTES] = HEADER_BYTES;
  h.u32[W_STATE_VERSION] = STATE_LAYOUT_VERSION;
  h.u32[W_FLOW_CAP] = o.shape.flowCapacity;
  h.u32[W_NEIGH_CAP] = o.shape.neighbourCapacity;
  h.u32[W_SEED] = o.shape.seed >>> 0;
  h.u32[W_IFACE_LEN] = writeString(h.u8, IFACE_AT, o.shape.iface, IFACE_MAX);
  h.u32[W_VERSION_LEN] = writeString(h.u8, VERSION_AT, o.version, VERSION_MAX);
  h.f64[D_TOTAL] = want.total;
  h.f64[D_STATE_OFF] = want.stateOffset;
  h.f64[D_STATE_BYTES] = want.stateBytes;
  h.f64[D_BANKS_OFF] = want.banksOffset;
  h.f64[D_BANKS_BYTES] = want.banksBytes;
  const createdAt = o.now ?? Date.now();
  h.f64[D_CREATED] = createdAt;
  h.u32[W_CHECKSUM] = headerChecksum(h.u8);
  const state = initState(m.buffer, want.stateOffset, { ...o.shape, ...o.timeouts, seed: o.shape.seed >>> 0 });
  Atomics.store(h.u32, W_MAGIC, REGION_MAGIC);
  return regionOf(file, m, {
    created: true, replaced, h, shape: { ...o.shape, seed: o.shape.seed >>> 0 }, layout: want, createdAt, createdBy: o.version, state,
  });
}

/**
 * Worker: attach the region the supervisor opened, checking its header against itself only (the
 * shape is read from it). Throws like openRegion; ENOENT is ESHM_UNAVAILABLE.
 */
export function attachRegion(file: string): Region {
  const na = unavailable();
  if (na) throw na;
  let m: { buffer: ArrayBuffer; created: boolean; bytes: number };
  try { m = mapFile(file, 0, { create: false }); } catch (e) { throw mapError(file, e); }
  try {
    const checked = checkHeader(file, m.buffer, m.bytes);
    if (checked === 'incomplete') throw corrupt(file, 'its header was never finished');
    const state = mapState(file, m.buffer, checked.shape, checked.layout);
    return regionOf(file, m, { created: false, replaced: null, ...checked, state });
  } catch (e) {
    unmapFile(m.buffer);
    throw e;
  }
}

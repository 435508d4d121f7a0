// The shared-memory mapping (native-bindings/shm.c, built by native-bindings/build.js): a file
// mapped MAP_SHARED as one ArrayBuffer. src/shm/region.ts lays the packet path's state out in it.

import * as fs from 'node:fs';
import * as path from 'node:path';

interface ShmAddon {
  mapFile(path: string, bytes: number, create: boolean): { buffer: ArrayBuffer; created: boolean; bytes: number };
  unmap(buffer: ArrayBuffer): void;
  parentDeathSignal(sig: number): void;
}

const buildDir = path.resolve(__dirname, '..', '..', 'native-bindings', 'build');

let cached: { ok: true; addon: ShmAddon } | { ok: false; why: string } | null = null;

function load(): { ok: true; addon: ShmAddon } | { ok: false; why: string } {
  if (cached) return cached;
  if (process.platform !== 'linux') return (cached = { ok: false, why: `the shared-memory region is Linux only (this is ${process.platform})` });
  const file = path.join(buildDir, 'shm.node');
  if (!fs.existsSync(file)) {
    let reason = 'the shm addon is not built';
    try { reason += `: ${fs.readFileSync(path.join(buildDir, 'shm.error'), 'utf8').trim()}`; } catch { reason += ' (run npm run build:native)'; }
    return (cached = { ok: false, why: reason });
  }
  try {
    return (cached = { ok: true, addon: require(file) as ShmAddon });
  } catch (e) {
    return (cached = { ok: false, why: `the shm addon does not load: ${(e as Error).message.split('\n')[0]} (rebuild it: npm run build:native)` });
  }
}

/** Whether the addon is built and loads here; `why` says what is missing and what to do. */
export function shmAvailable(): { ok: true } | { ok: false; why: string } {
  const a = load();
  return a.ok ? { ok: true } : { ok: false, why: a.why };
}

function addon(): ShmAddon {
  const a = load();
  if (!a.ok) throw Object.assign(new Error(`shm: ${a.why}`), { code: 'ENOTBUILT' });
  return a.addon;
}

/**
 * Map `path` read-write and shared. create: make it (mode 0600, zero-filled to `bytes`) when it
 * does not exist. An existing file is mapped at its own size (`bytes` in the result), which may
 * differ from the size asked for: the caller's header check says what differs. Throws
 * { code: errno name, message } on failure (ENOENT without create, EACCES, ENOSPC, ...).
 */
export function mapFile(path: string, bytes: number, o: { create: boolean }): { buffer: ArrayBuffer; created: boolean; bytes: number } {
  return addon().mapFile(path, bytes, o.create);
}

/** Let go of a mapping: every view over `buffer` reads as empty from now on; the pages are unmapped when V8 frees it. */
export function unmapFile(buffer: ArrayBuffer): void {
  addon().unmap(buffer);
}

/**
 * prctl(PR_SET_PDEATHSIG): this process gets `signal` when its parent dies (a worker must not
 * outlive its supervisor, even one killed by SIGKILL). A parent that died before the call is not
 * noticed: check process.ppid against the parent's PID after calling it.
 */
export function parentDeathSignal(signal: number): void {
  addon().parentDeathSignal(signal);
}

// Persisting what was changed through the API: one small JSON file, replaced atomically
// (write a temporary file beside it, fsync it, rename over the old one, fsync the directory),
// so a crash at any moment leaves either the old file or the new one, never a mix. A change is
// acknowledged only after this returns.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { VipgateError } from './errors';

/** Write `text` to `file` atomically and durably. Throws the underlying I/O error. */
export function writeFileAtomic(file: string, text: string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  let fd = -1;
  try {
    fd = fs.openSync(tmp, 'w', 0o600);
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.unlinkSync(tmp); } catch { /* not created */ }
    throw e;
  }
  // The rename is durable once the directory entry is: fsync the directory too.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* some filesystems refuse fsync on a directory; the rename itself is atomic */ }
}

/** Read a JSON file; null if it does not exist. Throws VipgateError ESTATE_INVALID if it is not JSON. */
export function readJsonFile(file: string): unknown | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new VipgateError('ESTATE_IO', `cannot read the state file ${file}: ${(e as Error).message}; check its permissions`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new VipgateError('ESTATE_INVALID',
      `the state file ${file} is not valid JSON (${(e as Error).message}); vipgate writes it atomically, so it was edited or ` +
      `damaged by something else: fix it, or move it aside to start from the config alone`);
  }
}

/**
 * At start: check that the state file's directory exists and is writable (so the first API
 * change does not fail), and remove temporary files a killed writer left beside the file (a kill
 * between the write and the rename leaves one; it is never read).
 */
export function checkStateDir(file: string): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new VipgateError('ESTATE_IO', `cannot write the state file's directory ${dir}: ${(e as Error).message}; create it, or set state_file: in the config to a writable path`);
  }
  const prefix = `.${path.basename(file)}.tmp-`;
  for (const f of fs.readdirSync(dir)) {
    if (!f.startsWith(prefix)) continue;
    const pid = Number(f.slice(prefix.length));
    if (pid === process.pid || (Number.isInteger(pid) && pidAlive(pid))) continue; // another live writer's: not ours to touch
    try { fs.unlinkSync(path.join(dir, f)); } catch { /* raced with its owner */ }
  }
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

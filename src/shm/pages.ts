// Which pages the shared state will sit on. The packet path's flow lookups are one cache miss
// each on a large table; on 4 KiB pages each is a TLB miss too (a page walk), on 2 MiB pages
// rarely. A file in Debian's /dev/shm gets 4 KiB pages (the kernel's shmem_enabled is "never");
// a tmpfs mounted with huge=always, within_size or advise (shm.c advises MADV_HUGEPAGE) gets
// 2 MiB ones. `npm run bench -- --shm DIR` measures the difference (README "Huge pages for the
// shared state").

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ShmPages {
  /** The mount the directory is on, its file system type and its huge= option ('' if none). */
  mount: string;
  fsType: string;
  huge: string;
  /** Whether a region there is mapped with 2 MiB pages. */
  hugePages: boolean;
}

/** Octal escapes in /proc/self/mountinfo (\040 for a space). */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * What /proc/self/mountinfo says of the mount holding `dir` (the longest mount point that
 * contains it). `mountinfo` is for tests; null when it cannot be read or says nothing of `dir`.
 */
export function shmPages(dir: string, mountinfo?: string): ShmPages | null {
  let text = mountinfo;
  let real = dir;
  if (text === undefined) {
    try { text = fs.readFileSync('/proc/self/mountinfo', 'utf8'); real = fs.realpathSync(dir); } catch { return null; }
  }
  let best: ShmPages | null = null;
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields] - fstype source superoptions
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 7 || dash < 6 || dash + 3 >= f.length) continue;
    const mount = unescape(f[4]!);
    const inside = real === mount || real.startsWith(mount === '/' ? '/' : `${mount}/`);
    if (!inside || (best && best.mount.length > mount.length)) continue;
    const fsType = f[dash + 1]!;
    const huge = /(?:^|,)huge=([a-z_]+)/.exec(f[dash + 3]!)?.[1] ?? '';
    best = { mount, fsType, huge, hugePages: fsType === 'tmpfs' && (huge === 'always' || huge === 'within_size' || huge === 'advise') };
  }
  return best;
}

/** One line for the log and `vipgate status`: where the shared state is and on which pages. */
export function describePages(file: string, p: ShmPages | null): string {
  const dir = path.dirname(file);
  if (!p) return `${dir}: mount not found in /proc/self/mountinfo (pages unknown)`;
  if (p.hugePages) return `2 MiB pages (${p.fsType} at ${p.mount}, huge=${p.huge})`;
  return `4 KiB pages (${p.fsType} at ${p.mount}${p.huge ? `, huge=${p.huge}` : ''})`;
}

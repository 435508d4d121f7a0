// One vipgate per NIC (issue 12 item 1). Two instances on one interface would both answer ARP
// for the VIPs and fight over the host-kernel nftables table (the second one's start or exit
// deletes the first one's table), so `vipgate run` takes an exclusive lock per interface before
// it touches anything, and only the holder installs, replaces or removes the table.
//
// The lock is flock(2) on /run/vipgate/<iface>.netns<inode>.lock: the kernel releases it when the
// holder's last descriptor closes, which includes every kind of death (kill -9, OOM, a crash), so
// a dead run never blocks the next one, and there is nothing stale to clean up. Node has no
// flock, so the descriptor is opened here and flock(1) from util-linux (Essential in Debian:
// present on every box) locks it through an inherited copy: a flock lock belongs to the open file
// description, not to the process that asked, so it stays held by our descriptor after flock(1)
// exits (the shell idiom `exec 9>file; flock -n 9`). Node opens files O_CLOEXEC, so the children
// vipgate runs later (nft, ip) never inherit the descriptor. A PID file with O_EXCL alone would
// not do: nothing removes it when the holder is killed.
//
// The key includes the network namespace (its inode, as `ls -iL /proc/self/ns/net` shows): an
// interface name is only unique inside one namespace, /run is shared by all of them, and two
// labs (or containers) with an eth0 each must not block each other.
//
// The file holds the holder's PID (written after the lock is taken) so that a refused start can
// say who holds it. The file is never deleted: unlinking a lock file while someone may be opening
// it lets two processes lock two different inodes under one name.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { VipgateError } from './errors';

/** Where the locks live; systemd's RuntimeDirectory=vipgate creates it (contrib/vipgate.service). */
export const LOCK_DIR = '/run/vipgate';

/** flock(1)'s exit status with --conflict-exit-code: taken by another descriptor. */
const CONFLICT_EXIT = 75;

export interface InstanceLock {
  readonly file: string;
  /** Until release(). */
  readonly held: boolean;
  /** Release the lock (close the descriptor) after blanking the PID. Idempotent. */
  release(): void;
}

/** The network namespace's inode (the same number `ip netns identify`'s files and `lsns` show), or null off Linux. */
export function netnsInode(): number | null {
  try { return fs.statSync('/proc/self/ns/net').ino; } catch { return null; }
}

/** `<iface>.netns<inode>`: what names one vipgate instance on this host (its lock, its shared-state region). */
export function instanceName(iface: string, netns: number | null = netnsInode()): string {
  const safe = iface.replace(/[^A-Za-z0-9_.@-]/g, '_');
  return netns === null ? safe : `${safe}.netns${netns}`;
}

export function lockFile(iface: string, dir: string = LOCK_DIR, netns: number | null = netnsInode()): string {
  return path.join(dir, `${instanceName(iface, netns)}.lock`);
}

/** The PID a lock file names, or null (empty: its holder is still starting, or exited). */
export function lockHolder(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch { return null; }
}

/**
 * Take the interface's lock without waiting. Throws VipgateError ERUN_LOCKED (naming the holder's
 * PID and how to stop it) when another vipgate holds it, ERUN_LOCK for anything that stops us
 * from taking it (no /run/vipgate and no permission to create it, no flock(1)).
 */
export function acquireInstanceLock(iface: string, o: { dir?: string; pid?: number } = {}): InstanceLock {
  const dir = o.dir ?? LOCK_DIR;
  const file = lockFile(iface, dir);
  let fd: number;
  let writable = true;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    // a+: create if missing, never truncate (the holder's PID must survive our open).
    try {
      fd = fs.openSync(file, 'a+', 0o644);
    } catch (e) {
      // A lock file another user made (root by hand, a systemd dynamic user): flock needs no
      // write access, so lock it read-only; only our PID cannot be written then.
      if ((e as NodeJS.ErrnoException).code !== 'EACCES') throw e;
      fd = fs.openSync(file, 'r');
      writable = false;
    }
  } catch (e) {
    throw new VipgateError('ERUN_LOCK',
      `cannot open the instance lock ${file}: ${(e as Error).message}; vipgate keeps one lock per interface in ${dir} ` +
      `so that two instances never serve one NIC: run it as root, or create ${dir} writable by its user ` +
      '(systemd: RuntimeDirectory=vipgate, as in contrib/vipgate.service)');
  }
  // fd 3 in the child is our descriptor: the lock lands on our open file description.
  const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT_EXIT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd], encoding: 'utf8', timeout: 10_000,
  });
  if (r.status !== 0) {
    fs.closeSync(fd);
    if (r.status === CONFLICT_EXIT) {
      const pid = lockHolder(file);
      const who = pid === null ? 'another vipgate (it is starting or stopping; its PID is not written yet)' : `vipgate PID ${pid}`;
      const how = pid === null ? `find it with: fuser -v ${file}` : `stop it first (kill ${pid}; systemctl stop vipgate if it runs as contrib/vipgate.service)`;
      throw new VipgateError('ERUN_LOCKED',
        `${iface} is already served by ${who} (lock ${file}); one vipgate per interface: ${how}, or attach this one to another interface`);
    }
    const err = r.error as NodeJS.ErrnoException | undefined;
    const why = err?.code === 'ENOENT'
      ? 'the flock command is not installed (apt-get install util-linux)'
      : (r.stderr || err?.message || `flock exited ${r.status ?? r.signal}`).trim();
    throw new VipgateError('ERUN_LOCK', `cannot take the instance lock ${file}: ${why}`);
  }
  if (writable) {
    try {
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${o.pid ?? process.pid}\n`, 0);
    } catch { /* the lock is what matters; a missing PID only makes a refusal less precise */ }
  }
  let held = true;
  return {
    file,
    get held() { return held; },
    release() {
      if (!held) return;
      held = false;
      // Blank the PID while still holding the lock, so nobody reads ours after we are gone.
      if (writable) try { fs.ftruncateSync(fd, 0); } catch { /* the kernel still releases the lock */ }
      fs.closeSync(fd);
    },
  };
}

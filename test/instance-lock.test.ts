// The per-interface instance lock (issue 12 item 1): a second holder is refused with the first
// one's PID and how to stop it; release and the holder's death (kill -9) both free it; the key
// includes the network namespace. The live proof (a second `vipgate run` in a lab refused while
// the first keeps its nftables table and keeps forwarding) is in test/instance-lab.test.ts.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { acquireInstanceLock, lockFile, lockHolder, netnsInode } from '../src/control/instance-lock.js';
import { VipgateError } from '../src/control/errors.js';
import { KernelFilter } from '../src/control/kernel-filter.js';

const haveFlock = spawnSync('flock', ['--version'], { encoding: 'utf8' }).status === 0;
const lockJs = path.resolve(__dirname, '..', 'src', 'control', 'instance-lock.js');

function refusal(f: () => unknown): VipgateError {
  try { f(); } catch (e) { if (e instanceof VipgateError) return e; throw e; }
  throw new Error('expected a refusal');
}

t.test('lock file names the interface and the network namespace', async (t) => {
  t.equal(lockFile('eth0', '/run/vipgate', 4026531840), '/run/vipgate/eth0.netns4026531840.lock');
  t.not(lockFile('eth0', '/d', 1), lockFile('eth0', '/d', 2), 'eth0 in two namespaces: two locks');
  t.equal(lockFile('a/b', '/d', 7), '/d/a_b.netns7.lock', 'no path separators from the name');
  if (fs.existsSync('/proc/self/ns/net')) t.type(netnsInode(), 'number', 'this namespace has an inode');
});

t.test('a second holder is refused with the PID, release frees it', { skip: haveFlock ? false : 'flock(1) from util-linux is not installed' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = acquireInstanceLock('eth9', { dir });
  t.equal(lockHolder(a.file), process.pid, 'the file names the holder');
  // flock locks belong to the open file description: a second open in this same process conflicts.
  const e = refusal(() => acquireInstanceLock('eth9', { dir }));
  t.equal(e.code, 'ERUN_LOCKED');
  t.match(e.message, `eth9 is already served by vipgate PID ${process.pid}`);
  t.match(e.message, `kill ${process.pid}`, 'says how to stop it');
  t.match(e.message, a.file, 'names the lock file');
  t.equal(lockHolder(a.file), process.pid, 'a refused start does not overwrite the PID');
  const other = acquireInstanceLock('eth10', { dir });
  t.equal(lockHolder(other.file), process.pid, 'another interface is not blocked');
  other.release();
  a.release();
  t.equal(lockHolder(a.file), null, 'released: the PID is blanked');
  const b = acquireInstanceLock('eth9', { dir });
  t.equal(lockHolder(b.file), process.pid, 'taken again after release');
  b.release();
  b.release(); // idempotent
});

t.test('the kernel releases the lock when the holder is killed', { skip: haveFlock ? false : 'flock(1) from util-linux is not installed' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const js = `const l = require(${JSON.stringify(lockJs)}); l.acquireInstanceLock('eth9', { dir: ${JSON.stringify(dir)} }); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', js], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await new Promise<void>((res, rej) => {
    child.stdout!.once('data', () => res());
    child.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
  });
  const e = refusal(() => acquireInstanceLock('eth9', { dir }));
  t.match(e.message, `PID ${child.pid}`, 'refused, naming the other process');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const l = acquireInstanceLock('eth9', { dir });
  t.equal(lockHolder(l.file), process.pid, 'after kill -9 of the holder the lock is free (no stale lock to clean)');
  l.release();
});

t.test('an unusable lock directory is refused with what to do', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const notDir = path.join(dir, 'file');
  fs.writeFileSync(notDir, '');
  const e = refusal(() => acquireInstanceLock('eth0', { dir: notDir }));
  t.equal(e.code, 'ERUN_LOCK');
  t.match(e.message, /cannot open the instance lock .*RuntimeDirectory=vipgate/);
});

t.test('the nftables table is touched only by the lock holder', { skip: haveFlock ? false : 'flock(1) from util-linux is not installed' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const lock = acquireInstanceLock('vgnosuch0', { dir });
  const kf = new KernelFilter({ iface: 'vgnosuch0', owned: [0x0a000064], backends: [], hostAddrs: [] }, lock);
  lock.release();
  t.equal(lock.held, false);
  // Checked before nft runs: nothing is executed for a filter whose lock is gone.
  t.throws(() => kf.install(), { code: 'EKERNEL_FILTER', message: /without holding its instance lock/ });
  t.throws(() => kf.update([0x0a000065], []), { code: 'EKERNEL_FILTER', message: /without holding its instance lock/ });
});

t.test("a lock file another user made still locks (read-only), and its holder is still named", { skip: haveFlock && process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0 ? false : 'needs flock(1), root and setpriv (to act as another user)' }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-lock-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // root holds the lock on a root-owned 0644 file; nobody (65534) tries: refused, naming root's PID.
  const held = acquireInstanceLock('eth9', { dir });
  const js = `const l = require(${JSON.stringify(lockJs)}); try { l.acquireInstanceLock('eth9', { dir: ${JSON.stringify(dir)} }); console.log('took it'); } catch (e) { console.log(e.code + ' ' + e.message); }`;
  const asNobody = () => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', js], { encoding: 'utf8', timeout: 20_000 });
  const r = asNobody();
  t.match(r.stdout, `ERUN_LOCKED eth9 is already served by vipgate PID ${process.pid}`, r.stderr);
  held.release();
  const free = asNobody();
  t.match(free.stdout, /^took it/, `once released, the other user takes it through a read-only descriptor ${free.stderr}`);
});

// /proc readers (src/obs/proc.ts) and the addon's setFifo (io.rt_priority: the packet worker
// made SCHED_FIFO), against a real child process: what `vipgate status` shows as the worker's
// scheduling is what the kernel says.
import t from 'tap';
import * as os from 'node:os';
import { spawn } from 'node:child_process';
import { cpuSeconds, scheduling } from '../src/obs/proc';
import { afpacketAvailable, setFifo } from '../native-bindings/afpacket';

t.test('cpuSeconds and scheduling read /proc; a process gone reads as 0 and null', async (t) => {
  t.ok(cpuSeconds(process.pid) > 0, 'this process has used some CPU');
  t.match(scheduling(process.pid), /^nice -?\d+$/, `this process: ${scheduling(process.pid)}`);
  t.equal(cpuSeconds(2 ** 22 + 12345), 0);
  t.equal(scheduling(2 ** 22 + 12345), null);
});

const root = process.getuid?.() === 0;
const addon = afpacketAvailable();
t.test('setFifo makes a process real-time and back; bad arguments are refused', { skip: !addon.ok ? `the addon: ${addon.ok || addon.why}` : !root ? 'needs CAP_SYS_NICE (root)' : false }, async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  const pid = child.pid!;
  os.setPriority(pid, -10);
  t.equal(scheduling(pid), 'nice -10');
  setFifo(pid, 7);
  t.equal(scheduling(pid), 'SCHED_FIFO 7', 'real-time, as the kernel reports it');
  setFifo(pid, 0);
  t.equal(scheduling(pid), 'nice -10', 'an ordinary task again, its nice value kept (the governor steps down to this)');
  t.throws(() => setFifo(pid, 100), { code: 'EINVAL' }, 'priority 100 refused');
  t.throws(() => setFifo(0, 5), { code: 'EINVAL' }, 'PID 0 refused (it would mean this thread)');
  t.throws(() => setFifo(2 ** 22 + 12345, 5), { code: 'ESRCH' }, 'no such process');
});

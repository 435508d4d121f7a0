// The packet worker's restart policy (src/app/backoff.ts) on a fake clock: the first unasked exit
// is answered at once, further exits in a row wait longer and longer (capped), a worker that ran
// long enough ends the streak, and an exit that was asked for (shutdown, upgrade) is no restart.
// And the IPC messages: what a peer of another build might send is recognised as not ours.

import t from 'tap';
import { isWorkerMessage, isSupervisorMessage, isUpgradeToOld } from '../src/app/ipc';
import { initialRestartState, stepRestart, restartDelayMs, describeExit, RESTART_POLICY, type RestartState, type WorkerExit } from '../src/app/backoff';

const kill = (at: number): WorkerExit => ({ code: null, signal: 'SIGKILL', reason: null, at });

/** Start a worker at `now`, let it say ready, kill it `ranMs` later; returns the state and the exit time. */
function crashAfter(s: RestartState, now: number, ranMs: number): { s: RestartState; at: number } {
  s = stepRestart(s, { type: 'spawned' }, now);
  s = stepRestart(s, { type: 'ready' }, now + 1);
  const at = now + ranMs;
  return { s: stepRestart(s, { type: 'exit', exit: kill(at) }, at), at };
}

t.test('delays: 0, then 100 ms doubling, capped at 5 s', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => restartDelayMs(n)), [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
});

t.test('a crash loop backs off; never a tight loop', async (t) => {
  let s = initialRestartState();
  let now = 1_000_000;
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = crashAfter(s, now, 50); // the worker dies 50 ms after each start
    s = r.s;
    t.equal(s.phase, 'backoff');
    delays.push(s.nextStartAt! - r.at);
    now = s.nextStartAt!;
  }
  t.same(delays, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  t.equal(s.restarts, 10, 'every unasked exit counted');
  t.same(s.lastExit, kill(now - delays[9]!), 'the last exit kept for status');
});

t.test('a worker that ran 30 s ends the streak', async (t) => {
  let s = initialRestartState();
  let r = crashAfter(s, 0, 10);
  r = crashAfter(r.s, r.s.nextStartAt!, 10);
  r = crashAfter(r.s, r.s.nextStartAt!, 10);
  t.equal(r.s.nextStartAt! - r.at, 200, 'third in a row: 200 ms');
  r = crashAfter(r.s, r.s.nextStartAt!, RESTART_POLICY.resetAfterMs);
  t.equal(r.s.streak, 1);
  t.equal(r.s.nextStartAt, r.at, 'after a long run: restarted at once');
  t.equal(r.s.restarts, 4);
  s = r.s;
  t.ok(s.phase === 'backoff');
});

t.test('asked-for exits are not restarts', async (t) => {
  let s = stepRestart(initialRestartState(), { type: 'spawned' }, 0);
  t.equal(s.phase, 'starting');
  s = stepRestart(s, { type: 'ready' }, 5);
  t.equal(s.phase, 'running');
  s = stepRestart(s, { type: 'stop' }, 10);
  t.equal(s.phase, 'stopping');
  s = stepRestart(s, { type: 'exit', exit: { code: 0, signal: null, reason: null, at: 12 } }, 12);
  t.equal(s.phase, 'stopped');
  t.equal(s.restarts, 0);
  t.equal(s.nextStartAt, null);
  // Stopped while waiting out a back-off: nothing is started any more.
  let b = crashAfter(initialRestartState(), 0, 10).s;
  b = crashAfter(b, b.nextStartAt!, 10).s;
  t.equal(b.phase, 'backoff');
  b = stepRestart(b, { type: 'stop' }, 20);
  t.equal(b.phase, 'stopped');
  t.equal(b.nextStartAt, null);
});

t.test('exit descriptions', async (t) => {
  t.equal(describeExit(kill(0)), 'killed by SIGKILL');
  t.equal(describeExit({ code: 3, signal: null, reason: 'cannot attach the region: wrong magic', at: 0 }), 'exit code 3: cannot attach the region: wrong magic');
});

t.test('IPC messages are checked on arrival', async (t) => {
  t.ok(isWorkerMessage({ t: 'ready', io: 'native', why: 'x', synProbes: null }));
  t.ok(isWorkerMessage({ t: 'probe', backend: 'web1', port: 80, result: { ok: false, latencyMs: 3, reason: 'refused' }, at: 1 }));
  t.ok(isWorkerMessage({ t: 'event', type: 'syn_check', fields: {}, at: 1 }));
  t.ok(isWorkerMessage({ t: 'fatal', reason: 'cannot attach' }));
  for (const bad of [null, 'ready', [], { t: 'ready', io: 'xdp', why: '', synProbes: null }, { t: 'probe', backend: 'web1', port: 1.5, result: { ok: true }, at: 1 },
    { t: 'event', type: 'x', fields: [], at: 1 }, { t: 'fatal' }, { t: 'hello' }]) {
    t.notOk(isWorkerMessage(bad), `refused: ${JSON.stringify(bad)}`);
  }
  t.ok(isSupervisorMessage({ t: 'stop' }));
  t.ok(isSupervisorMessage({ t: 'names', names: ['web1'] }));
  t.ok(isSupervisorMessage({ t: 'init', iface: 'eth0', region: '/dev/shm/x', packetFd: 4, filter: '', io: { backend: 'native', batch: 256, spinUs: 200 }, synCheck: null, names: [], log: { level: 'info', format: 'json' } }));
  t.notOk(isSupervisorMessage({ t: 'init', iface: 'eth0', region: '/dev/shm/x', packetFd: '4', io: {}, names: [], log: {} }), 'an fd that is not a number');
  t.ok(isUpgradeToOld({ t: 'refused', reason: 'layout 2' }));
  t.notOk(isUpgradeToOld({ t: 'checked', version: '0.2.0' }), 'checked without its PID');
});

// The real-time packet worker's governor (io.rt_priority). SCHED_FIFO lets a frame's wake-up
// preempt every ordinary task, which is what low-load latency wants; but the kernel throttles a
// real-time task that runs 95 % of a second (sched_rt_runtime_us): under a flood the worker would
// stop for up to 50 ms a second while ordinary tasks on its CPU catch up, and the ring overflows
// meanwhile. Saturated, latency is queueing, not wake-ups, so the worker steps down to an ordinary
// task (nice -10, as without rt_priority) while it is busy most of a window, and back up once its
// load falls. A pure function of (state, how busy the last window was), so it is tested on numbers.

/** Measured over windows of this length (ms) of the worker's own thread CPU time. */
export const RT_WINDOW_MS = 100;
/** Step down when the worker's thread ran more than this share of a window... */
export const RT_STEP_DOWN_BUSY = 0.9;
/** ...and back up once it ran less than this share (the gap keeps it from flapping). */
export const RT_STEP_UP_BUSY = 0.6;

export type RtState = 'realtime' | 'stepped_down';

/** The next state after a window in which the worker's thread was busy `busy` (0..1) of the time. */
export function stepRt(state: RtState, busy: number): RtState {
  if (!Number.isFinite(busy)) return state; // a window that could not be measured changes nothing
  if (state === 'realtime') return busy > RT_STEP_DOWN_BUSY ? 'stepped_down' : 'realtime';
  return busy < RT_STEP_UP_BUSY ? 'realtime' : 'stepped_down';
}

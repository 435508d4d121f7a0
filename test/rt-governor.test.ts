// The real-time worker's governor (src/app/rt-governor.ts): steps down when saturated (where the
// kernel would throttle a real-time task), back up when the load falls, never flapping in between.
import t from 'tap';
import { stepRt, RT_STEP_DOWN_BUSY, RT_STEP_UP_BUSY, type RtState } from '../src/app/rt-governor';

t.test('steps down only above the saturation share, back up only below the lower one', async (t) => {
  t.equal(stepRt('realtime', 0), 'realtime');
  t.equal(stepRt('realtime', RT_STEP_DOWN_BUSY), 'realtime', 'at the threshold: stays');
  t.equal(stepRt('realtime', 0.95), 'stepped_down', 'a flood: steps down');
  t.equal(stepRt('realtime', 1.2), 'stepped_down', 'more than the window (clock skew): saturated');
  t.equal(stepRt('stepped_down', 0.8), 'stepped_down', 'between the two: stays down (no flapping)');
  t.equal(stepRt('stepped_down', RT_STEP_UP_BUSY), 'stepped_down', 'at the lower threshold: stays down');
  t.equal(stepRt('stepped_down', 0.3), 'realtime', 'the load fell: real-time again');
  t.equal(stepRt('realtime', NaN), 'realtime', 'an unmeasured window changes nothing');
  t.equal(stepRt('stepped_down', NaN), 'stepped_down');
});

t.test('a load that hovers between the thresholds makes one transition, not one per window', async (t) => {
  let s: RtState = 'realtime', changes = 0;
  const loads = [0.2, 0.5, 0.95, 0.85, 0.7, 0.88, 0.65, 0.75, 0.89, 0.61];
  for (const b of loads) { const n = stepRt(s, b); if (n !== s) changes++; s = n; }
  t.equal(s, 'stepped_down');
  t.equal(changes, 1);
});

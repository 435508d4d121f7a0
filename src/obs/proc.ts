// What /proc says of a process, for figures (the cluster heartbeat's CPU load, the lab benchmark).

import * as fs from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on Linux). */
const CLK_TCK = 100;

/** CPU seconds (user + system) process `pid` has used so far; 0 when it cannot be read (a process gone). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid); // the name may hold spaces and parentheses: fields are counted from the last ')'
  return f ? (Number(f[14 - 3]) + Number(f[15 - 3])) / CLK_TCK : 0;
}

/** The fields of /proc/PID/stat after the command name (field n of proc(5) is at index n - 3), or null. */
function statFields(pid: number): string[] | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** How thread `pid` (a process's main thread) is scheduled: "SCHED_FIFO 10", "nice -10", ...; null when it cannot be read. */
export function scheduling(pid: number): string | null {
  const f = statFields(pid);
  if (!f) return null;
  const policy = Number(f[41 - 3]), rt = Number(f[40 - 3]), nice = Number(f[19 - 3]);
  switch (policy) {
    case 1: return `SCHED_FIFO ${rt}`;
    case 2: return `SCHED_RR ${rt}`;
    case 3: return `SCHED_BATCH, nice ${nice}`;
    case 5: return 'SCHED_IDLE';
    default: return `nice ${nice}`;
  }
}

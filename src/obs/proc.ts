// What /proc says of a process, for figures (the cluster heartbeat's CPU load, the lab benchmark).

import * as fs from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on Linux). */
const CLK_TCK = 100;

/** CPU seconds (user + system) process `pid` has used so far; 0 when it cannot be read (a process gone). */
export function cpuSeconds(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // the name may hold spaces and parentheses
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

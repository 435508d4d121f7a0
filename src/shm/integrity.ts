// The attach-time check of the records in a shared state (issue 9 item 5): before a process
// becomes the state's writer (a new packet worker, or one process running everything), every flow
// and neighbour record is checked and what cannot be trusted is dropped or repaired, and counted
// (state_records_dropped, state_records_repaired). The packet path then never reads a record it
// could misread: an impossible state byte, a backend slot outside the per-backend arrays, a time
// that is not a number (a NaN last-seen time never expires), a live flow its own lookup cannot
// reach (a torn or overwritten key), a nat flow whose reverse-index entry does not point back.
//
// A dropped flow becomes a tombstone (FS_DEAD), never EMPTY: EMPTY ends a probe sequence and
// would hide the flows after it. The gauges (flows_active, verified_flows, per-backend live and
// verified flows) are recounted from the records, since a writer killed between making a record
// live and counting it leaves them off by one; the monotonic counters keep their values.
//
// Cost: one pass over the flow slots (one cache line each) and the neighbour slots; a probe
// sequence per live flow. About 20-40 ms per million slots on this machine, once per attach.

import { StateViews, MAX_BACKEND_SLOTS, T_ECHO_TOKENS, T_ECHO_LAST, B_STATE, B_VERIFIED, F_CLI, F_VIP, F_PORTS, F_BACKIP, F_BACKEND, F_RSLOT, D_LAST, D_CREATED } from '../dataplane/state';
import { FS_EMPTY, FS_DEAD, FS_CLOSING, MAX_PROBE, REVERSE_SALT } from '../dataplane/flows';
import { Ctr } from '../dataplane/counters';
import { hash3 } from '../tables/hash';

export interface IntegrityReport {
  /** Flow records that claim to be live (any state byte past DEAD, impossible ones included), before dropping. */
  flowsChecked: number;
  /** Flow records dropped, by why. */
  flowsDropped: { impossibleState: number; badField: number; unreachable: number; reverseBroken: number };
  /** nat reverse-index entries relinked to their live flow. */
  reverseRepaired: number;
  /** Neighbour entries dropped (impossible state byte, or a last-seen time that is not a number). */
  neighboursDropped: number;
  /** Gauge slots (flows_active, verified_flows, per-backend) whose value the recount changed. */
  gaugesCorrected: number;
  /** Replication rings (issue 11: journal, imports) whose control words were impossible: emptied. */
  ringsReset: number;
}

export function dropped(r: IntegrityReport): number {
  const d = r.flowsDropped;
  return d.impossibleState + d.badField + d.unreachable + d.reverseBroken + r.neighboursDropped;
}

/** Check and repair every record of `v` (see the file comment). Call only as the state's one writer, before writing. */
export function scanRecords(v: StateViews): IntegrityReport {
  const rep: IntegrityReport = {
    flowsChecked: 0, flowsDropped: { impossibleState: 0, badField: 0, unreachable: 0, reverseBroken: 0 },
    reverseRepaired: 0, neighboursDropped: 0, gaugesCorrected: 0,
    ringsReset: (v.journal.repair() ? 1 : 0) + (v.imports.repair() ? 1 : 0),
  };
  const fb = v.fb, fw = v.fw, fd = v.fd, r = v.rRef, n = v.flowSlots, mask = n - 1;
  const seed = v.seed | 0, rseed = (v.seed ^ REVERSE_SALT) | 0;
  const drop = (s: number): void => { fb[(s << 6) + B_STATE] = FS_DEAD; };

  for (let s = 0; s < n; s++) {
    const st = fb[(s << 6) + B_STATE]!;
    if (st <= FS_DEAD) continue;
    rep.flowsChecked++;
    if (st > FS_CLOSING) { drop(s); rep.flowsDropped.impossibleState++; continue; }
    const w = s << 4, d = s << 3;
    const b = fw[w + F_BACKEND]!, ver = fb[(s << 6) + B_VERIFIED]!, rs = fw[w + F_RSLOT]!;
    if (b < 0 || b >= MAX_BACKEND_SLOTS || ver > 1 || rs < 0 || rs > n || !Number.isFinite(fd[d + D_LAST]!) || !Number.isFinite(fd[d + D_CREATED]!)) {
      drop(s); rep.flowsDropped.badField++; continue;
    }
    // The forward lookup must meet this record first: its key hashes to within MAX_PROBE before
    // it with no EMPTY slot and no live record of the same key in between.
    const cli = fw[w + F_CLI]!, vip = fw[w + F_VIP]!, ports = fw[w + F_PORTS]!;
    let t = hash3(cli, vip, ports, seed) & mask, found = false;
    for (let i = 0; i < MAX_PROBE; i++) {
      if (t === s) { found = true; break; }
      const tst = fb[t << 6]!;
      if (tst === FS_EMPTY) break;
      if (tst > FS_DEAD && tst <= FS_CLOSING && fw[(t << 4) + F_CLI] === cli && fw[(t << 4) + F_VIP] === vip && fw[(t << 4) + F_PORTS] === ports) break;
      t = (t + 1) & mask;
    }
    if (!found) { drop(s); rep.flowsDropped.unreachable++; continue; }
    if (rs === 0) continue; // dsr (or a nat flow never made live without its link: see FlowTable.insert)
    const rslot = rs - 1;
    if (r[rslot] === s + 1) continue;
    // The entry does not point back. Relink it if reverseLookup would reach it and no other live
    // flow owns it; else the flow's replies could never be matched: drop it.
    const backIp = fw[w + F_BACKIP]!;
    let u = hash3(backIp, cli, ports, rseed) & mask, reachable = false;
    for (let i = 0; i < MAX_PROBE; i++) {
      if (u === rslot) { reachable = true; break; }
      if (r[u] === 0) break;
      u = (u + 1) & mask;
    }
    const other = r[rslot]! - 1;
    const owned = other >= 0 && other < n && other !== s && fb[other << 6]! > FS_DEAD && fw[(other << 4) + F_RSLOT] === rs;
    if (reachable && !owned) { r[rslot] = s + 1; rep.reverseRepaired++; continue; }
    drop(s); rep.flowsDropped.reverseBroken++;
  }

  // Neighbours: 0 = never used (ends a probe), 1 = used. A bad entry becomes used-and-stale (a
  // tombstone the next learn reuses), so the probe sequences through it stay intact.
  for (let s = 0; s < v.neighbourSlots; s++) {
    const ns = v.nState[s]!;
    if (ns === 0 || (ns === 1 && !Number.isNaN(v.nSeen[s]!))) continue;
    v.nState[s] = 1;
    v.nSeen[s] = -Infinity;
    rep.neighboursDropped++;
  }

  // The echo bucket (icmp.ts): a NaN token count would never limit, a NaN refill time never refill.
  if (Number.isNaN(v.times[T_ECHO_TOKENS]!)) v.times[T_ECHO_TOKENS] = 0;
  if (Number.isNaN(v.times[T_ECHO_LAST]!)) v.times[T_ECHO_LAST] = -Infinity;

  // Recount the gauges from the records that stand.
  const bFlows = new Float64Array(MAX_BACKEND_SLOTS), bVerified = new Float64Array(MAX_BACKEND_SLOTS);
  let active = 0, verified = 0;
  for (let s = 0; s < n; s++) {
    if (fb[s << 6]! <= FS_DEAD) continue;
    const b = fw[(s << 4) + F_BACKEND]!;
    active++;
    bFlows[b]!++;
    if (fb[(s << 6) + B_VERIFIED] === 1) { verified++; bVerified[b]!++; }
  }
  const c = v.counters;
  const set = (arr: Float64Array, i: number, x: number): void => { if (arr[i] !== x) { arr[i] = x; rep.gaugesCorrected++; } };
  set(c, Ctr.flows_active, active);
  set(c, Ctr.verified_flows, verified);
  for (let b = 0; b < MAX_BACKEND_SLOTS; b++) { set(v.bFlows, b, bFlows[b]!); set(v.bVerified, b, bVerified[b]!); }
  c[Ctr.state_records_dropped]! += dropped(rep);
  c[Ctr.state_records_repaired]! += rep.reverseRepaired;
  return rep;
}

// The flow table: open addressing with linear probing over 64-byte flow records (state.ts),
// keyed by a numeric hash of (client IP, VIP, client port << 16 | VIP port). TCP only.
//
// Entries expire lazily: a lookup that meets an idle-too-long entry expires it; `sweep` walks
// the table a slice at a time to expire the rest and keep flows_active true. An expired entry
// becomes DEAD (a tombstone: probing continues past it, inserts reuse it); EMPTY means never
// used, and probing stops there. Every probe sequence is bounded by MAX_PROBE, so the worst case
// per packet is fixed whatever the table holds. A full table (flows_active = capacity, or no
// reusable slot within MAX_PROBE) refuses the new flow: the caller drops the SYN and counts
// flow_table_full; existing flows are never evicted for new ones (Katran under a SYN flood).
//
// nat mode keeps a second index (rRef) keyed by the backend's view of the flow
// (backend IP, client IP, client port << 16 | VIP port) pointing at the forward slot. An entry
// is valid only while the flow it points to is live and points back at it (F_RSLOT): a slot
// whose flow died, or was reused by a flow indexed elsewhere, is free again.
//
// Cluster (issue 11): while `journal` is set (the tables say cluster), every change a peer needs
// goes into the journal ring as a 24-byte record (src/shm/flow-record.ts): NEW at insert,
// ESTABLISHED, CLOSED, EXPIRED, and REFRESH from the sweep for flows still in use, so a peer's copy
// never idles out while the flow lives here. A full journal counts repl_journal_dropped; the
// supervisor then resends a snapshot. Records imported from a peer are never journalled.

import { StateViews, PacketClock, NOW, T_HALF_OPEN, T_ESTABLISHED, T_CLOSING, H_SWEEP_CURSOR,
  B_STATE, B_VERIFIED, B_CLIMAC, F_CLI, F_VIP, F_PORTS, F_BACKIP, F_BACKEND, F_RSLOT, D_LAST, D_CREATED, D_PKTS_IN, D_PKTS_OUT } from './state';
import { hash3 } from '../tables/hash';
import { Ctr } from './counters';
import type { RecordRing } from '../shm/ring';
import { REPL_NEW, REPL_ESTABLISHED, REPL_CLOSED, REPL_EXPIRED, REPL_REFRESH } from '../shm/flow-record';

export const FS_EMPTY = 0;
export const FS_DEAD = 1;
export const FS_SYN = 2;         // SYN seen, not yet acknowledged: half-open timeout
export const FS_ESTABLISHED = 3;
export const FS_CLOSING = 4;     // FIN or RST seen: closing timeout
export const FLOW_STATE_NAMES = ['empty', 'dead', 'syn', 'established', 'closing'] as const;

/** upsert() results: done; refused (nat: another flow holds the backend-side mapping); no room. */
export const UPSERT_OK = 0, UPSERT_CONFLICT = 1, UPSERT_FULL = 2;

/** Longest probe sequence: bounds the work per packet whatever the table holds. */
export const MAX_PROBE = 32;
/** Salt of the nat reverse index's hash (src/shm/integrity.ts recomputes where an entry belongs). */
export const REVERSE_SALT = 0x7f4a7c15;

export class FlowTable {
  readonly mask: number;
  readonly capacity: number;
  private readonly seed: number;
  private readonly rseed: number;
  private readonly fb: Uint8Array;
  private readonly fw: Int32Array;
  private readonly fd: Float64Array;
  /** The journal ring while the tables say cluster (Dataplane.publish), else null: nothing is journalled. */
  journal: RecordRing | null = null;

  /** The clock is this process's (state.ts PacketClock): lookups expire against clock[NOW]. */
  constructor(private readonly v: StateViews, readonly clock: PacketClock) {
    this.mask = v.flowSlots - 1;
    this.capacity = v.flowCapacity;
    this.seed = v.seed | 0;
    this.rseed = (v.seed ^ REVERSE_SALT) | 0;
    this.fb = v.fb;
    this.fw = v.fw;
    this.fd = v.fd;
  }

  timeoutOf(state: number): number {
    const t = this.v.times;
    return state === FS_ESTABLISHED ? t[T_ESTABLISHED]! : state === FS_SYN ? t[T_HALF_OPEN]! : t[T_CLOSING]!;
  }

  // Field accessors by slot, for control code, tests and listing (the packet path inlines them).
  // Addresses and port pairs come back signed, as the packet path keeps them; formatIpv4 takes either.
  state(s: number): number { return this.fb[(s << 6) + B_STATE]!; }
  client(s: number): number { return this.fw[(s << 4) + F_CLI]!; }
  vip(s: number): number { return this.fw[(s << 4) + F_VIP]!; }
  ports(s: number): number { return this.fw[(s << 4) + F_PORTS]!; }
  backendIp(s: number): number { return this.fw[(s << 4) + F_BACKIP]!; }
  backend(s: number): number { return this.fw[(s << 4) + F_BACKEND]!; }
  lastSeen(s: number): number { return this.fd[(s << 3) + D_LAST]!; }
  created(s: number): number { return this.fd[(s << 3) + D_CREATED]!; }
  packetsIn(s: number): number { return this.fd[(s << 3) + D_PKTS_IN]!; }
  packetsOut(s: number): number { return this.fd[(s << 3) + D_PKTS_OUT]!; }
  live(s: number): boolean { return this.fb[(s << 6) + B_STATE]! > FS_DEAD; }

  /** Journal flow s's change `op` (its current state goes with it). Call only while `journal` is set. */
  private record(op: number, s: number): void {
    const w = s << 4, fw = this.fw;
    if (!this.journal!.pushFlow(op, this.fb[s << 6]!, this.fb, (s << 6) + B_CLIMAC, fw[w + F_CLI]!, fw[w + F_VIP]!, fw[w + F_PORTS]!, fw[w + F_BACKIP]!)) {
      this.v.counters[Ctr.repl_journal_dropped]!++;
    }
  }

  private expire(s: number): void {
    const c = this.v.counters;
    if (this.journal !== null) this.record(REPL_EXPIRED, s); // with the state it had
    this.fb[(s << 6) + B_STATE] = FS_DEAD;
    this.v.bFlows[this.fw[(s << 4) + F_BACKEND]!]!--;
    this.unverify(s);
    c[Ctr.flows_active]!--;
    c[Ctr.flows_expired]!++;
  }

  /**
   * Where lookup() will first read for this key, as a hint for touchAll(): the byte index of the
   * flow record's line (>= 0). Computing it reads nothing from the table.
   */
  forwardHint(cli: number, vip: number, ports: number): number {
    return (hash3(cli, vip, ports, this.seed) & this.mask) << 6;
  }

  /** forwardHint() for reverseLookup(): -2 - the reverse-index slot (always <= -2). */
  reverseHint(backIp: number, cli: number, ports: number): number {
    return -2 - (hash3(backIp, cli, ports, this.rseed) & this.mask);
  }

  /**
   * Load the lines hints [0, n) name (-1: none), reading only: a software prefetch for a batch
   * (issue 10). The loop is kept tiny so the CPU has many of these independent misses in flight
   * at once instead of one per frame; a reverse hint also loads the flow record its entry names
   * (a second, dependent miss, which overlaps with the other frames' ones). The result means
   * nothing; it is returned so the loads are not optimised away.
   */
  touchAll(hints: Int32Array, n: number): number {
    const fb = this.fb, r = this.v.rRef;
    let x = 0;
    for (let i = 0; i < n; i++) {
      const h = hints[i]!;
      if (h >= 0) x ^= fb[h]!;
      else if (h < -1) { const ref = r[-2 - h]!; if (ref > 0) x ^= fb[(ref - 1) << 6]!; }
    }
    return x;
  }

  /** Slot of the live flow with this forward key, or -1. Meeting it expired, expires it. Time: clock[NOW]. */
  lookup(cli: number, vip: number, ports: number): number {
    const fb = this.fb, fw = this.fw, mask = this.mask, now = this.clock[NOW]!;
    let s = hash3(cli, vip, ports, this.seed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const w = s << 4;
      const st = fb[s << 6]!;
      if (st === FS_EMPTY) return -1;
      if (st !== FS_DEAD && fw[w + F_CLI] === cli && fw[w + F_VIP] === vip && fw[w + F_PORTS] === ports) {
        if (now - this.fd[(s << 3) + D_LAST]! > this.timeoutOf(st)) { this.expire(s); return -1; }
        return s;
      }
      s = (s + 1) & mask;
    }
    return -1;
  }

  /**
   * Create a flow whose key the caller has just looked up and not found. Returns the slot, or -1
   * when the table is full (nothing is changed then, except expiring idle entries met on the way).
   * nat: `rslot` is the reverse-index slot reverseFreeSlot gave (-1 in dsr); `mac` at `macAt` the
   * client's MAC; `state` the flow's first state (FS_SYN; an adopted flow: established or closing).
   * Journalled as NEW while `journal` is set (upsert() calls it with the journal off).
   *
   * The record is written key first and made live last (issue 9: the state outlives the process):
   * a worker killed anywhere in here leaves either no live record or a whole one, never a live
   * record with a stale key, backend or reverse link. The state byte is stored with Atomics.store
   * so the compiler cannot move the earlier stores after it. The counters follow; a kill between
   * leaves the gauges one off, which the attach-time check (src/shm/integrity.ts) recounts.
   */
  insert(cli: number, vip: number, ports: number, backend: number, backIp: number, rslot: number, mac: Uint8Array, macAt: number, state: number): number {
    const fb = this.fb, fw = this.fw, fd = this.fd, mask = this.mask, now = this.clock[NOW]!;
    let s = hash3(cli, vip, ports, this.seed) & mask;
    let free = -1;
    for (let i = 0; i < MAX_PROBE; i++) {
      const st = fb[s << 6]!;
      if (st === FS_EMPTY || st === FS_DEAD) { free = s; break; }
      if (now - fd[(s << 3) + D_LAST]! > this.timeoutOf(st)) { this.expire(s); free = s; break; }
      s = (s + 1) & mask;
    }
    const c = this.v.counters;
    if (free < 0 || c[Ctr.flows_active]! >= this.capacity) return -1;
    const w = free << 4, d = free << 3, b = free << 6;
    fw[w + F_CLI] = cli; fw[w + F_VIP] = vip; fw[w + F_PORTS] = ports;
    fw[w + F_BACKEND] = backend; fw[w + F_BACKIP] = backIp; fw[w + F_RSLOT] = 0;
    if (rslot >= 0) this.setReverse(rslot, free);
    fd[d + D_LAST] = now; fd[d + D_CREATED] = now;
    fd[d + D_PKTS_IN] = 0; fd[d + D_PKTS_OUT] = 0;
    fb[b + B_VERIFIED] = 0;
    fb[b + B_CLIMAC] = mac[macAt]!; fb[b + B_CLIMAC + 1] = mac[macAt + 1]!; fb[b + B_CLIMAC + 2] = mac[macAt + 2]!;
    fb[b + B_CLIMAC + 3] = mac[macAt + 3]!; fb[b + B_CLIMAC + 4] = mac[macAt + 4]!; fb[b + B_CLIMAC + 5] = mac[macAt + 5]!;
    Atomics.store(fb, b + B_STATE, state);
    c[Ctr.flows_active]!++;
    c[Ctr.flows_created]!++;
    this.v.bFlows[backend]!++;
    this.v.bConns[backend]!++;
    if (this.journal !== null) this.record(REPL_NEW, free);
    return free;
  }

  /**
   * Mark flow s as verified: its SYN went to a backend that answered a check or probe within the
   * SYN-time check's max age. While a backend has verified flows, new SYNs to it skip the probe.
   */
  markVerified(s: number): void {
    if (this.fb[(s << 6) + B_VERIFIED] === 1) return;
    this.fb[(s << 6) + B_VERIFIED] = 1;
    this.v.bVerified[this.fw[(s << 4) + F_BACKEND]!]!++;
    this.v.counters[Ctr.verified_flows]!++;
  }
  verified(s: number): boolean { return this.fb[(s << 6) + B_VERIFIED] === 1; }

  /** Flow s is ending (FIN or RST seen): it no longer shows that its backend answers. */
  unverify(s: number): void {
    if (this.fb[(s << 6) + B_VERIFIED] !== 1) return;
    this.fb[(s << 6) + B_VERIFIED] = 0;
    this.v.bVerified[this.fw[(s << 4) + F_BACKEND]!]!--;
    this.v.counters[Ctr.verified_flows]!--;
  }

  /** Flow s saw a FIN or an RST (or vipgate reset it): closing timeout from now on, no longer verified. */
  close(s: number): void {
    this.fb[(s << 6) + B_STATE] = FS_CLOSING;
    this.unverify(s);
    if (this.journal !== null) this.record(REPL_CLOSED, s);
  }

  /** Flow s completed its handshake (the packet path saw its ACK, or in nat the backend's SYN-ACK). */
  establish(s: number): void {
    this.fb[(s << 6) + B_STATE] = FS_ESTABLISHED;
    if (this.journal !== null) this.record(REPL_ESTABLISHED, s);
  }

  /** End a flow now (its 5-tuple is being reused by a new connection). */
  remove(s: number): void {
    if (this.fb[(s << 6) + B_STATE]! > FS_DEAD) this.expire(s);
  }

  /**
   * Upsert a peer's flow (issue 11 import; the caller validated the record, mapped its backend
   * address to local slot `backend`, and keeps the journal off meanwhile). Absent: inserted with
   * state `st` (nat: with its reverse-index entry). Present with the same backend: the state only
   * moves forward (syn < established < closing), except that a NEW reopens a closing flow (its
   * 5-tuple reused by a new connection), and the flow is fresh again. Present with another
   * backend: a NEW replaces it (the 5-tuple was reused there), anything else leaves ours. CLOSED
   * and EXPIRED close ours (same backend) and insert nothing. Returns UPSERT_*.
   */
  upsert(op: number, st: number, mac: Uint8Array, macAt: number, cli: number, vip: number, ports: number, backend: number, backIp: number, nat: boolean): number {
    const now = this.clock[NOW]!;
    let f = this.lookup(cli, vip, ports);
    const ending = op === REPL_CLOSED || op === REPL_EXPIRED;
    if (f >= 0) {
      const same = this.fw[(f << 4) + F_BACKIP] === backIp, b = f << 6;
      if (same) {
        const cur = this.fb[b + B_STATE]!;
        if (ending || st === FS_CLOSING) { if (cur !== FS_CLOSING) this.close(f); }
        else if (st > cur) this.fb[b + B_STATE] = st;
        // A NEW on a closing flow is a new connection on its 5-tuple (the peer's flows_reused, sent
        // as EXPIRED then NEW): it starts over there, so it does here.
        else if (op === REPL_NEW && cur === FS_CLOSING) this.fb[b + B_STATE] = st;
        this.fd[(f << 3) + D_LAST] = now;
        return UPSERT_OK;
      }
      if (op !== REPL_NEW) return UPSERT_OK; // ours stays: only a new connection replaces a flow
      this.expire(f);
      f = -1;
    }
    if (ending) return UPSERT_OK;
    let rslot = -1;
    if (nat) {
      if (this.reverseLookup(backIp, cli, ports) >= 0) return UPSERT_CONFLICT;
      rslot = this.reverseFreeSlot(backIp, cli, ports);
      if (rslot < 0) return UPSERT_FULL;
    }
    // The journal is off: not sent back. Its creation time stands for "last sent" (see sweep).
    return this.insert(cli, vip, ports, backend, backIp, rslot, mac, macAt, st) >= 0 ? UPSERT_OK : UPSERT_FULL;
  }

  // ---- nat reverse index ----

  /** True when reverse-index slot `r` holds a valid entry: its flow is live and points back at it. */
  private reverseValid(r: number, f: number): boolean {
    return this.fb[f << 6]! > FS_DEAD && this.fw[(f << 4) + F_RSLOT] === r + 1;
  }

  /** Forward slot of the live flow whose backend-side key is this, or -1. */
  reverseLookup(backIp: number, cli: number, ports: number): number {
    const r = this.v.rRef, mask = this.mask, now = this.clock[NOW]!;
    let s = hash3(backIp, cli, ports, this.rseed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const ref = r[s]!;
      if (ref === 0) return -1;
      const f = ref - 1, w = f << 4, fw = this.fw;
      if (this.reverseValid(s, f) && fw[w + F_BACKIP] === backIp && fw[w + F_CLI] === cli && fw[w + F_PORTS] === ports) {
        if (now - this.fd[(f << 3) + D_LAST]! > this.timeoutOf(this.fb[f << 6]!)) { this.expire(f); return -1; }
        return f;
      }
      s = (s + 1) & mask;
    }
    return -1;
  }

  /** A reverse-index slot free for this key (never used, or no longer valid), or -1. */
  reverseFreeSlot(backIp: number, cli: number, ports: number): number {
    const r = this.v.rRef, mask = this.mask;
    let s = hash3(backIp, cli, ports, this.rseed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const ref = r[s]!;
      if (ref === 0 || !this.reverseValid(s, ref - 1)) return s;
      s = (s + 1) & mask;
    }
    return -1;
  }

  setReverse(rslot: number, flowSlot: number): void {
    this.v.rRef[rslot] = flowSlot + 1;
    this.fw[(flowSlot << 4) + F_RSLOT] = rslot + 1;
  }

  /**
   * Expire idle flows, visiting at most `budget` slots from where the last sweep stopped
   * (the cursor lives in shared memory). Returns the number expired. Time: clock[NOW].
   */
  sweep(budget: number): number {
    const v = this.v, n = v.flowSlots, fb = this.fb, fd = this.fd, now = this.clock[NOW]!;
    let cur = v.header[H_SWEEP_CURSOR]! % n, expired = 0;
    // Cluster: a flow used since it was last sent is sent again (REFRESH), at most once per a
    // quarter of the established timeout, so the peer's copy (which idles out like ours) lives on.
    const refreshMs = this.journal !== null ? v.times[T_ESTABLISHED]! / 4 : Infinity, nowU = now >>> 0;
    for (let i = 0; i < budget && i < n; i++) {
      const st = fb[cur << 6]!;
      if (st > FS_DEAD) {
        const idle = now - fd[(cur << 3) + D_LAST]!;
        if (idle > this.timeoutOf(st)) { this.expire(cur); expired++; }
        else if (refreshMs !== Infinity) {
          // Last sent: its last REFRESH, or its NEW at creation (D_CREATED, in the record's own
          // cache line, so an insert never touches fRefresh); a stamp left by an earlier flow in
          // this slot is older than this one's creation, so the later of the two is right.
          const since = Math.min((nowU - v.fRefresh[cur]!) >>> 0, now - fd[(cur << 3) + D_CREATED]!);
          if (since >= refreshMs && idle < since) { v.fRefresh[cur] = nowU; this.record(REPL_REFRESH, cur); }
        }
      }
      cur = (cur + 1) % n;
    }
    v.header[H_SWEEP_CURSOR] = cur;
    return expired;
  }
}

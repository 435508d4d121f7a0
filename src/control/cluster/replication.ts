// Flow-state replication, the supervisor's side (issue 11 item 4). The packet worker writes each
// change of its flows into the journal ring as a 24-byte record (src/shm/flow-record.ts); here
// those bytes are moved, unparsed, into MSG_FLOWS datagrams for every live peer. A peer's records
// go, again unparsed, into the import ring, which the worker drains into its flow table. A node
// that (re)joins asks each peer for a snapshot: the peer walks its flow table a slice at a time
// and sends every live flow, then MSG_SNAPSHOT_END with the count.
//
// Nothing here waits: every call does a bounded amount of work and returns; the node's timers
// (node.ts) call them. Rate bound: at most `maxRecordsPerTick` journal records leave per tick
// (the rest wait in the ring; a ring that fills is counted by the worker, repl_journal_dropped,
// and answered with a snapshot to every peer so nothing stays lost).

import { FLOW_WIRE_BYTES, REPL_NEW, REPL_ESTABLISHED, REPL_CLOSED, putFlowRecord } from '../../shm/flow-record';
import type { RecordRing } from '../../shm/ring';
import type { StateViews } from '../../dataplane/state';
import { B_STATE, B_CLIMAC, F_CLI, F_VIP, F_PORTS, F_BACKIP } from '../../dataplane/state';
import { FS_DEAD, FS_SYN, FS_ESTABLISHED } from '../../dataplane/flows';
import { MAX_FLOWS_PER_DATAGRAM, flowsBody } from './wire';

/** Sends one MSG_FLOWS body of `count` records to the given peers (indexes); the node frames, signs and sends it. */
export type SendFlows = (body: Uint8Array, count: number, to: readonly number[]) => void;

/** The journal's records to the live peers, a datagram per MAX_FLOWS_PER_DATAGRAM records. */
export class JournalSender {
  private readonly staging = new Uint8Array(MAX_FLOWS_PER_DATAGRAM * FLOW_WIRE_BYTES);
  /** Records taken from the journal and sent (to every live peer at the time). */
  sent = 0;
  /** Records taken while no peer was alive to receive them (a peer that comes asks for a snapshot). */
  discarded = 0;

  constructor(private readonly journal: RecordRing, private readonly send: SendFlows, private readonly maxRecordsPerTick: number) {}

  /** Records waiting in the journal. */
  pending(): number { return this.journal.readable(); }

  /** Move up to maxRecordsPerTick records from the journal to `to`. Returns how many were taken. */
  tick(to: readonly number[]): number {
    let taken = 0;
    while (taken < this.maxRecordsPerTick) {
      const n = this.journal.copyOut(this.staging, 0, Math.min(MAX_FLOWS_PER_DATAGRAM, this.maxRecordsPerTick - taken));
      if (n === 0) break;
      taken += n;
      if (to.length === 0) { this.discarded += n; continue; }
      this.send(flowsBody(this.staging, 0, n, false), n, to);
      this.sent += n;
    }
    return taken;
  }
}

/**
 * One peer's snapshot: every live flow of this node's table, walked `slotsPerTick` slots a tick
 * (the worker writes meanwhile; a record that changes under the read is skipped: its change is
 * in the journal and follows anyway).
 */
export class SnapshotSender {
  private cursor = 0;
  private readonly staging = new Uint8Array(MAX_FLOWS_PER_DATAGRAM * FLOW_WIRE_BYTES);
  private readonly staging32 = new Int32Array(this.staging.buffer);
  private n = 0;
  /** Records sent so far. */
  count = 0;
  done = false;

  constructor(private readonly state: StateViews, readonly peer: number, private readonly send: SendFlows, private readonly slotsPerTick: number) {}

  /** Walk the next slice; returns true once the whole table has been sent (then send MSG_SNAPSHOT_END with `count`). */
  tick(): boolean {
    if (this.done) return true;
    const v = this.state, fb = v.fb, fw = v.fw, end = Math.min(v.flowSlots, this.cursor + this.slotsPerTick);
    const out = this.staging, out32 = this.staging32;
    for (let s = this.cursor; s < end; s++) {
      const b = s << 6;
      const st = fb[b + B_STATE]!;
      if (st <= FS_DEAD) continue;
      const w = s << 4, cli = fw[w + F_CLI]!;
      putFlowRecord(out, out32, this.n * FLOW_WIRE_BYTES, st === FS_SYN ? REPL_NEW : st === FS_ESTABLISHED ? REPL_ESTABLISHED : REPL_CLOSED, st,
        fb, b + B_CLIMAC, cli, fw[w + F_VIP]!, fw[w + F_PORTS]!, fw[w + F_BACKIP]!);
      // Changed under the read (expired, reused): leave it to the journal.
      if (fb[b + B_STATE] !== st || fw[w + F_CLI] !== cli) continue;
      if (++this.n === MAX_FLOWS_PER_DATAGRAM) this.flush();
    }
    this.cursor = end;
    if (end >= v.flowSlots) { this.flush(); this.done = true; }
    return this.done;
  }

  private flush(): void {
    if (this.n === 0) return;
    this.send(flowsBody(this.staging, 0, this.n, true), this.n, [this.peer]);
    this.count += this.n;
    this.n = 0;
  }
}

// The cluster runtime of one node (issue 11), in the supervisor: the impure shell around the pure
// parts — membership.ts (who is alive), ownership.ts (who owns each VIP), join.ts (caught up yet?),
// wire.ts (datagrams, HMAC, replay guard) and replication.ts (journal out, snapshots) — with the
// one UDP socket and the timers. The patent's three parts of a node map onto it: monitoring the
// other nodes (heartbeats in, the membership machine), handling their requests (snapshots, flow
// records into the import ring), and managing this node (its heartbeat, its load, what it owns).
//
// Timing: a control tick every CONTROL_TICK_MS runs dead detection and the ownership rule, so a
// takeover follows a peer's death by at most that much; heartbeats leave every heartbeat interval;
// the journal is drained every REPL_TICK_MS. All of it runs in the supervisor, a process apart
// from the packet worker, so none of it waits behind the packet path.
//
// What this node owns becomes the tables' arpVips (the worker answers ARP for those only) through
// the controller; a VIP taken over is announced with gratuitous ARP at once, twice more 50 ms
// apart, and again after 2 s and 5 s for caches that missed the first ones.

import * as dgram from 'node:dgram';
import type { ClusterConfig, VipPlacement } from '../config/cluster';
import type { ClusterView, ClusterNodeView, ClusterVipView } from '../api-types';
import type { StateViews } from '../../dataplane/state';
import type { RecordRing } from '../../shm/ring';
import { Ctr } from '../../dataplane/counters';
import { VipgateError } from '../errors';
import { formatIpv4 } from '../../wire/addr';
import { cpuSeconds } from '../../obs/proc';
import type { Logger } from '../../obs/log';
import {
  encode, decode, heartbeatBody, snapshotEndBody, ReplayGuard, REJECT_REASONS,
  MSG_HEARTBEAT, MSG_FLOWS, MSG_SNAPSHOT_REQUEST, MSG_SNAPSHOT_END, type MsgType, type Envelope,
} from './wire';
import { JournalSender, SnapshotSender } from './replication';
import { initialJoin, stepJoin, type JoinState, type JoinEvent, type JoinOptions } from './join';
import * as M from './membership';
import * as O from './ownership';

/** Dead detection and the ownership rule run this often: a takeover follows a death by at most this. */
const CONTROL_TICK_MS = 10;
/** The journal is drained this often. */
const REPL_TICK_MS = 5;
/** Journal records sent per REPL_TICK_MS at most: 200,000 a second, ~5 MB/s per peer. */
const REPL_MAX_RECORDS_PER_TICK = 1000;
/** Flow-table slots a snapshot walks per REPL_TICK_MS: a 1Mi-slot table in about 0.3 s. */
const SNAPSHOT_SLOTS_PER_TICK = 16384;
/** Gratuitous ARP after a takeover: now, then these delays (ms). */
const GARP_SCHEDULE_MS = [0, 50, 100, 2000, 5000];
/** Rejected messages are logged at most once per reason per this long (they are all counted). */
const REJECT_LOG_MS = 10_000;

export interface ClusterDeps {
  cfg: ClusterConfig;
  key: Buffer;
  state: StateViews;
  journal: RecordRing;
  imports: RecordRing;
  /** Every address the tables answer ARP for when owned: the VIPs and the nat gateway (unsigned). */
  addresses(): number[];
  natGateway: number | null;
  placement(): Map<number, VipPlacement>;
  /** Backends this node's health checks see DOWN (unsigned addresses). */
  down(): number[];
  /** The packet worker's PID, for its CPU use (the load a heartbeat carries). */
  workerPid(): number | null;
  /** Make `owned` (unsigned addresses) the addresses the packet path answers ARP for. */
  apply(owned: number[]): void;
  /** One round of gratuitous ARP for these addresses; returns the frames sent. */
  announce(ips: number[]): number;
  emit(type: string, fields: Record<string, unknown>, at: number): void;
  /** A peer declared dead is heard again (its address): the supervisor clears the kernel's neighbour entry for it. */
  peerBack?(address: string): void;
  log: Logger;
  clock?: () => number;
  /** The datagram transport (tests pass a fake); default: a UDP socket bound to this node's address and the cluster port. */
  transport?: Transport;
}

export interface Transport {
  send(buf: Buffer, address: string, port: number): void;
  onMessage(cb: (buf: Buffer, from: { address: string; port: number }) => void): void;
  close(): void;
}

export async function udpTransport(address: string, port: number): Promise<Transport> {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, address, () => { sock.off('error', reject); resolve(); });
  });
  // A send to a peer that is down (ICMP unreachable) surfaces here: it is a dead peer, not an error.
  sock.on('error', () => { /* counted by the silence of that peer */ });
  return {
    send(buf, a, p) { sock.send(buf, p, a, () => { /* the same */ }); },
    onMessage(cb) { sock.on('message', (b, r) => cb(b, { address: r.address, port: r.port })); },
    close() { try { sock.close(); } catch { /* closed */ } },
  };
}

interface PeerRt {
  received: number;
  sent: number;
  receivedIncarnation: number;
  lastRecordsAt: number | null;
  snapshot: ClusterNodeView['replication']['snapshot'];
}

export class ClusterNode {
  private readonly cfg: ClusterConfig;
  private readonly clock: () => number;
  readonly incarnation: number;
  private seq = 0;
  private readonly guard = new ReplayGuard();
  private membership: M.MembershipState;
  private join: JoinState;
  private readonly joinOpts: JoinOptions;
  private owned = new Set<number>();
  /** The rule's answer at the last control tick: address -> node index (-1: none). */
  private owners = new Map<number, number>();
  private readonly peers: PeerRt[];
  private readonly rejected: Record<string, number> = Object.fromEntries([...REJECT_REASONS, 'wrong_address'].map((r) => [r, 0]));
  private readonly rejectLogged = new Map<string, number>();
  private readonly journalSender: JournalSender;
  private readonly snapshots = new Map<number, SnapshotSender>();
  private journalDropped: number;
  private readonly k = { heartbeatsSent: 0, heartbeatsReceived: 0, takeovers: 0, releases: 0, splitBrains: 0, snapshotsSent: 0, snapshotsReceived: 0, recordsSent: 0, recordsReceived: 0, importRingFull: 0, garpSent: 0 };
  private peerRestartsSeen = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly garpTimers = new Set<NodeJS.Timeout>();
  private load = { flows: 0, capacity: 0, pps: 0, cpu: 0 };
  /** Backends our checks see DOWN, dotted (sampled with the load, once a second). */
  private downCache: string[] = [];
  private loadPrev: { at: number; frames: number; cpu: number } | null = null;
  /** The conflicts (VIP and claimants) going on now: each is counted and re-announced once, when it starts. */
  private conflictsSeen = new Set<string>();
  /** When an ownership last failed to apply (logged at most once per REJECT_LOG_MS). */
  private applyErrorAt = -Infinity;
  private stopped = false;

  private constructor(private readonly d: ClusterDeps, private readonly transport: Transport) {
    this.cfg = d.cfg;
    this.clock = d.clock ?? Date.now;
    const now = this.clock();
    this.incarnation = now;
    this.membership = M.initMembership({ peers: this.cfg.peers.length, self: this.cfg.self, heartbeatMs: this.cfg.heartbeatMs, deadAfterMs: this.cfg.deadAfterMs }, now);
    this.join = initialJoin(this.cfg.peers.length, now);
    this.joinOpts = { discoverMs: Math.max(this.cfg.deadAfterMs, 2 * this.cfg.heartbeatMs), snapshotTimeoutMs: 5000, attempts: 3 };
    this.peers = this.cfg.peers.map(() => ({ received: 0, sent: 0, receivedIncarnation: 0, lastRecordsAt: null, snapshot: 'none' as const }));
    this.journalSender = new JournalSender(d.journal, (body, n, to) => this.sendFlows(body, n, to), REPL_MAX_RECORDS_PER_TICK);
    this.journalDropped = d.state.counters[Ctr.repl_journal_dropped]!;
    this.sampleLoad(now);
  }

  /** Bind the socket (or take the given transport) and start the timers. Throws with what to do when the address is not this host's. */
  static async start(d: ClusterDeps): Promise<ClusterNode> {
    const self = d.cfg.peers[d.cfg.self]!;
    let t = d.transport;
    if (!t) {
      try {
        t = await udpTransport(self.addressText, d.cfg.port);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const why = err.code === 'EADDRNOTAVAIL'
          ? `${self.addressText} is not an address of this host; give this node (cluster.node: ${self.name}) that address (ip addr add ${self.addressText}/24 dev ...), or fix its entry in cluster.peers`
          : err.code === 'EADDRINUSE' ? `UDP port ${d.cfg.port} on ${self.addressText} is in use (another vipgate?); stop it or set cluster.port` : err.message;
        throw new VipgateError('ECLUSTER_BIND', `cluster: cannot bind ${self.addressText}:${d.cfg.port}: ${why}`);
      }
    }
    const n = new ClusterNode(d, t);
    t.onMessage((b, from) => n.receive(b, from));
    n.timers.push(setInterval(() => n.heartbeat(), d.cfg.heartbeatMs));
    n.timers.push(setInterval(() => n.controlTick(), CONTROL_TICK_MS));
    n.timers.push(setInterval(() => n.replicationTick(), REPL_TICK_MS));
    n.timers.push(setInterval(() => n.sampleLoad(n.clock()), 1000));
    n.heartbeat();
    d.log.info(`cluster: node ${self.name} (${self.addressText}:${d.cfg.port}), peers ${d.cfg.peers.filter((_, i) => i !== d.cfg.self).map((p) => `${p.name} ${p.addressText}`).join(', ')}; ` +
      `heartbeat ${d.cfg.heartbeatMs} ms, dead after ${d.cfg.deadAfterMs} ms, preempt ${d.cfg.preempt ? 'on' : 'off'}; owning nothing until caught up with the peers' flows`, { event: 'cluster_start' });
    return n;
  }

  /**
   * Stop. goodbye: first tell the peers this node owns nothing and is not synced (so they take its
   * VIPs at once instead of after dead_after): a planned stop; not for an upgrade, whose new build
   * is back well within dead_after.
   */
  stop(o: { goodbye?: boolean } = {}): void {
    if (this.stopped) return;
    if (o.goodbye) {
      this.owned = new Set();
      this.join = { ...this.join, synced: false };
      this.heartbeat();
      this.d.log.info('cluster: leaving: told the peers to take over this node\'s VIPs', { event: 'cluster_leave' });
    }
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const t of this.garpTimers) clearTimeout(t);
    this.transport.close();
  }

  /** Whether this node answers ARP for `ip` now. */
  owns(ip: number): boolean { return this.owned.has(ip >>> 0); }
  ownedList(): number[] { return [...this.owned]; }

  // ---- sending ----

  private env(): Envelope {
    return { sender: this.cfg.self, incarnation: this.incarnation, seq: ++this.seq, sentAt: this.clock() };
  }

  private sendTo(type: MsgType, body: Uint8Array, to: readonly number[]): void {
    if (this.stopped || to.length === 0) return;
    const buf = encode(type, this.env(), body, this.d.key);
    for (const i of to) { const p = this.cfg.peers[i]!; this.transport.send(buf, p.addressText, this.cfg.port); }
  }

  private sendFlows(body: Uint8Array, n: number, to: readonly number[]): void {
    this.sendTo(MSG_FLOWS, body, to);
    for (const i of to) this.peers[i]!.sent += n;
    this.k.recordsSent += n * to.length;
  }

  private otherPeers(): number[] { return this.cfg.peers.map((_, i) => i).filter((i) => i !== this.cfg.self); }
  private alivePeers(): number[] { return this.otherPeers().filter((i) => this.isAlive(i)); }

  private heartbeat(): void {
    const owned = [...this.owned].map(formatIpv4);
    const down = this.downCache;
    for (const i of this.otherPeers()) {
      const hb = {
        load: this.load, owned, synced: this.join.synced, down, sent: this.peers[i]!.sent,
        history: { startedAt: this.incarnation, takeovers: this.k.takeovers, peerRestartsSeen: this.peerRestartsSeen },
      };
      let body: Buffer;
      try {
        body = heartbeatBody(hb);
      } catch (e) {
        // Too big for one datagram (VIPs added through the API past the config check's bound, or
        // many backends down): the down list is only information, the owned list is not.
        try {
          body = heartbeatBody({ ...hb, down: [] });
        } catch {
          this.heartbeatTooBig(e as Error);
          this.mute = true;
          return;
        }
      }
      this.mute = false;
      this.sendTo(MSG_HEARTBEAT, body, [i]);
      this.k.heartbeatsSent++;
    }
  }

  private tooBigLoggedAt = -Infinity;
  /** Heartbeats cannot be sent: the peers will take the VIPs, so this node lets go of them (no split brain). */
  private mute = false;
  private heartbeatTooBig(e: Error): void {
    const now = this.clock();
    if (now - this.tooBigLoggedAt < REJECT_LOG_MS) return;
    this.tooBigLoggedAt = now;
    this.d.log.error(`cluster: cannot send heartbeats: ${e.message}; the peers will declare this node dead and take its VIPs, so it lets go of them: remove VIPs until at most 48 remain`, { event: 'cluster_heartbeat_too_big' });
  }

  // ---- receiving ----

  /** One datagram from the socket. Exposed for tests. */
  receive(buf: Buffer, from: { address: string; port: number }): void {
    if (this.stopped) return;
    const now = this.clock();
    const m = decode(buf, this.d.key, this.cfg.peers.length, this.cfg.self);
    if (!m.ok) return this.reject(m.reason, from);
    if (this.cfg.peers[m.env.sender]!.addressText !== from.address) return this.reject('wrong_address', from);
    const r = this.guard.check(m.env, now);
    if (r) return this.reject(r, from);
    const p = m.env.sender, rt = this.peers[p]!;
    if (rt.receivedIncarnation !== m.env.incarnation) {
      // A new incarnation: its `sent` counter starts again, so does ours of what came from it.
      rt.receivedIncarnation = m.env.incarnation;
      rt.received = 0;
    }
    switch (m.type) {
      case MSG_HEARTBEAT: {
        this.k.heartbeatsReceived++;
        const res = M.step(this.membership, { type: 'heartbeat', from: p, incarnation: m.env.incarnation, heartbeat: m.heartbeat! }, now);
        this.membership = res.state;
        this.transitions(res.transitions, now);
        break;
      }
      case MSG_FLOWS: {
        const f = m.flows!;
        const pushed = this.d.imports.pushRecords(f.records, 0, f.count);
        if (pushed < f.count) this.k.importRingFull += f.count - pushed;
        rt.received += f.count;
        rt.lastRecordsAt = now;
        this.k.recordsReceived += f.count;
        if (f.snapshot) this.stepJoin({ t: 'records', peer: p, count: f.count }, now);
        break;
      }
      case MSG_SNAPSHOT_REQUEST:
        this.startSnapshot(p);
        this.d.log.info(`cluster: ${this.cfg.peers[p]!.name} asked for our flows; sending a snapshot`, { event: 'cluster_snapshot_requested', peer: this.cfg.peers[p]!.name });
        break;
      case MSG_SNAPSHOT_END:
        this.k.snapshotsReceived++;
        rt.snapshot = 'received';
        this.stepJoin({ t: 'end', peer: p, count: m.snapshotCount! }, now);
        break;
    }
  }

  private reject(reason: string, from: { address: string; port: number }): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
    const now = this.clock(), last = this.rejectLogged.get(reason) ?? -Infinity;
    if (now - last >= REJECT_LOG_MS) {
      this.rejectLogged.set(reason, now);
      this.d.log.warn(`cluster: refused a message from ${from.address}:${from.port}: ${reason}${REJECT_HINT[reason] ? ` (${REJECT_HINT[reason]})` : ''}; it changed nothing (all such are counted: vipgate cluster)`, { event: 'cluster_rejected', reason, from: from.address });
    }
  }

  // ---- the machines ----

  private transitions(ts: readonly M.Transition[], now: number): void {
    for (const t of ts) {
      const name = this.cfg.peers[t.peer]!.name;
      if (t.kind === 'alive') {
        this.d.emit('cluster_peer_alive', { node: name }, now);
        // Back from the dead: if it was our link that was cut, the kernel's neighbour entry for it
        // may sit INCOMPLETE and only retry ARP on its own timer (up to 1 s; measured in the lab),
        // holding our heartbeats back while both of us answer for the VIPs. Clear it: the next
        // heartbeat resolves it at once.
        if (t.from === 'dead') this.d.peerBack?.(this.cfg.peers[t.peer]!.addressText);
        this.stepJoin({ t: 'alive', peer: t.peer }, now);
      } else if (t.kind === 'dead') {
        this.d.emit('cluster_peer_dead', { node: name, silent_ms: Math.round(t.silentMs ?? 0), dead_after_ms: Math.round(t.timeoutMs) }, now);
        this.snapshots.delete(t.peer);
        this.stepJoin({ t: 'dead', peer: t.peer }, now);
      } else if (t.kind === 'restarted') {
        this.peerRestartsSeen++;
        this.d.emit('cluster_peer_restarted', { node: name }, now);
      }
    }
  }

  private stepJoin(e: JoinEvent, now: number): void {
    const r = stepJoin(this.join, e, now, this.joinOpts);
    this.join = r.state;
    for (const i of r.request) {
      this.peers[i]!.snapshot = 'requested';
      this.sendTo(MSG_SNAPSHOT_REQUEST, new Uint8Array(0), [i]);
    }
    if (r.became === 'synced') {
      this.d.emit('cluster_synced', { how: r.state.how }, now);
    }
  }

  /** Dead detection, catching up, the ownership rule, applied. */
  private controlTick(): void {
    if (this.stopped) return;
    const now = this.clock();
    const res = M.step(this.membership, { type: 'tick' }, now);
    this.membership = res.state;
    this.transitions(res.transitions, now);
    if (!this.join.synced) this.stepJoin({ t: 'tick', alive: this.alivePeers(), importPending: this.d.imports.readable() }, now);
    this.decide(now);
  }

  private ownershipInput(): O.OwnershipInput {
    const addrs = this.d.addresses();
    const place = this.d.placement();
    return {
      self: this.cfg.self, preempt: this.cfg.preempt,
      nodes: this.cfg.peers.map((_, i) => {
        if (i === this.cfg.self) return { alive: true, synced: this.join.synced, flows: this.load.flows, capacity: this.load.capacity, claims: [...this.owned] };
        const hb = this.membership.peers[i]!.heartbeat;
        return { alive: this.isAlive(i), synced: hb?.synced ?? false, flows: hb?.load.flows ?? 0, capacity: hb?.load.capacity ?? 0, claims: hb?.ownedIps ?? [] };
      }),
      vips: addrs.map((ip) => {
        const pl = ip === this.d.natGateway ? undefined : place.get(ip);
        return { ip, prefer: pl?.prefer ? this.cfg.peers.findIndex((p) => p.name === pl.prefer) : -1, placement: pl?.placement ?? 'priority' };
      }),
    };
  }

  private decide(now: number): void {
    const input = this.ownershipInput();
    const owners = O.owners(input);
    this.owners = owners;
    const want = new Set<number>();
    if (!this.mute) for (const [ip, n] of owners) if (n === this.cfg.self) want.add(ip);
    const gained = [...want].filter((ip) => !this.owned.has(ip));
    const lost = [...this.owned].filter((ip) => !want.has(ip));
    // Split brain: a peer claims what the rule gives us (a partition healed). Re-announce at once so
    // caches move back; the peer lets go when it next computes (our heartbeat shows our claim).
    // Either side counts it (the loser may let go before it hears the winner's claim, and the
    // winner then sees no conflict); only the winner re-announces.
    const contested: number[] = [];
    let splits = 0;
    // Only conflicts still going on are remembered: the same two nodes splitting again later is a new split brain.
    const current = new Set<string>();
    for (const c of O.conflicts(input)) {
      const key = `${c.ip}:${c.claimants.join(',')}`;
      if (!c.claimants.includes(this.cfg.self)) continue;
      current.add(key);
      if (this.conflictsSeen.has(key)) continue;
      splits++;
      if (want.has(c.ip)) contested.push(c.ip);
    }
    this.conflictsSeen = current;
    this.k.splitBrains += splits;
    if (!gained.length && !lost.length && !contested.length) return;
    if (gained.length || lost.length) {
      try {
        this.d.apply([...want]);
      } catch (e) {
        // The tables could not be republished (a bug, or tables grown past a bank): keep what the
        // packet path answers now and what we claim consistent, and try again at the next tick.
        if (now - this.applyErrorAt >= REJECT_LOG_MS) {
          this.applyErrorAt = now;
          this.d.log.error(`cluster: cannot apply the ownership of ${[...want].map(formatIpv4).join(', ') || 'nothing'}: ${(e as Error).message}`, { event: 'cluster_apply_failed' });
        }
        return;
      }
      this.owned = want;
    }
    const names = (ips: number[]) => ips.map(formatIpv4);
    if (lost.length) {
      this.k.releases += lost.length;
      const to = lost.map((ip) => this.nameOf(owners.get(ip) ?? -1));
      this.d.emit('cluster_release', { vips: names(lost), to: [...new Set(to)] }, now);
    }
    if (gained.length) {
      this.k.takeovers += gained.length;
      const from = gained.map((ip) => this.previousClaimant(ip));
      this.d.emit('cluster_takeover', { vips: names(gained), from: [...new Set(from)] }, now);
      this.garp(gained);
    }
    if (contested.length) {
      this.d.emit('cluster_split_brain', { vips: names(contested), kept: true }, now);
      if (!gained.length) this.garp(contested);
    }
  }

  private nameOf(i: number): string { return i >= 0 ? this.cfg.peers[i]!.name : '(none)'; }

  private previousClaimant(ip: number): string {
    for (const i of this.otherPeers()) if (this.membership.peers[i]!.heartbeat?.ownedIps.includes(ip)) return this.cfg.peers[i]!.name;
    return '(none)';
  }

  private garp(ips: number[]): void {
    for (const delay of GARP_SCHEDULE_MS) {
      const run = () => {
        const mine = ips.filter((ip) => this.owned.has(ip));
        if (mine.length && !this.stopped) this.k.garpSent += this.d.announce(mine);
      };
      if (delay === 0) { run(); continue; }
      const t = setTimeout(() => { this.garpTimers.delete(t); run(); }, delay);
      t.unref();
      this.garpTimers.add(t);
    }
  }

  /** Send peer `i` every flow of our table (from the start again if one was under way). */
  private startSnapshot(i: number): void {
    this.snapshots.set(i, new SnapshotSender(this.d.state, i, (body, n, to) => this.sendFlows(body, n, to), SNAPSHOT_SLOTS_PER_TICK));
    this.peers[i]!.snapshot = 'sending';
  }

  private replicationTick(): void {
    if (this.stopped) return;
    const alive = this.alivePeers();
    this.journalSender.tick(alive);
    const dropped = this.d.state.counters[Ctr.repl_journal_dropped]!;
    if (dropped !== this.journalDropped) {
      // The worker wrote faster than we sent: some changes never left. Send everything again.
      this.journalDropped = dropped;
      for (const i of alive) if (!this.snapshots.has(i)) this.startSnapshot(i);
      this.d.log.warn('cluster: the flow journal overflowed (changes faster than replication sends them); sending every flow to the peers again', { event: 'cluster_journal_overflow' });
    }
    for (const [i, s] of this.snapshots) {
      // A request can come before the asker's first heartbeat does: only a peer declared dead stops one.
      if (this.membership.peers[i]!.status === 'dead') { this.snapshots.delete(i); continue; }
      if (s.tick()) {
        this.snapshots.delete(i);
        this.sendTo(MSG_SNAPSHOT_END, snapshotEndBody(s.count), [i]);
        this.peers[i]!.snapshot = 'sent';
        this.k.snapshotsSent++;
      }
    }
  }

  // ---- load ----

  private sampleLoad(now: number): void {
    const c = this.d.state.counters;
    const frames = c[Ctr.frames_in]!;
    const worker = this.d.workerPid(), cpu = cpuSeconds(process.pid) + (worker ? cpuSeconds(worker) : 0);
    const prev = this.loadPrev;
    const dt = prev ? (now - prev.at) / 1000 : 0;
    this.load = {
      flows: Math.max(0, c[Ctr.flows_active]!), capacity: this.d.state.flowCapacity,
      pps: prev && dt > 0 ? Math.max(0, Math.round((frames - prev.frames) / dt)) : 0,
      // A worker that restarted meanwhile counts from zero again: no figure for that second.
      cpu: prev && dt > 0 && cpu >= prev.cpu ? Math.round(((cpu - prev.cpu) / dt) * 100) / 100 : 0,
    };
    this.loadPrev = { at: now, frames, cpu };
    this.downCache = this.d.down().map(formatIpv4);
  }

  // ---- the view ----

  view(): ClusterView {
    const now = this.clock();
    const cfg = this.cfg;
    const nodes: ClusterNodeView[] = cfg.peers.map((p, i) => {
      const self = i === cfg.self, pv = this.membership.peers[i]!, hb = self ? null : pv.heartbeat;
      const rt = this.peers[i]!, g = self ? null : this.guard.view(i);
      return {
        name: p.name, address: p.addressText, priority: i + 1, self,
        state: self ? 'self' : pv.status,
        lastHeardMs: self || pv.lastHeartbeatAt === null ? null : now - pv.lastHeartbeatAt,
        effectiveDeadAfterMs: self ? cfg.deadAfterMs : pv.effectiveTimeoutMs,
        clockSkewMs: g ? -(g.refusedSkewMs ?? g.skewMs) : null,
        load: self ? this.load : hb ? hb.load : null,
        owns: self ? [...this.owned].map(formatIpv4) : hb?.owned ?? [],
        synced: self ? this.join.synced : hb ? hb.synced : null,
        restarts: pv.restarts,
        replication: {
          sent: rt.sent, received: rt.received,
          lagRecords: hb ? Math.max(0, hb.sent - rt.received) : null,
          lastRecordsMs: rt.lastRecordsAt === null ? null : now - rt.lastRecordsAt,
          snapshot: rt.snapshot,
        },
      };
    });
    const place = this.d.placement();
    const vips: ClusterVipView[] = this.d.addresses().map((ip) => {
      const o = this.owners.get(ip) ?? -1, pl = place.get(ip);
      return {
        vip: formatIpv4(ip), owner: o >= 0 ? cfg.peers[o]!.name : null, here: this.owned.has(ip),
        rule: ip === this.d.natGateway ? 'gateway (moves with the VIPs)' : pl?.prefer ? `prefer ${pl.prefer}` : pl?.placement === 'least_loaded' ? 'least_loaded' : 'priority',
      };
    });
    return {
      enabled: true, node: cfg.peers[cfg.self]!.name, incarnation: new Date(this.incarnation).toISOString(), synced: this.join.synced,
      port: cfg.port, heartbeatMs: cfg.heartbeatMs, deadAfterMs: cfg.deadAfterMs, preempt: cfg.preempt,
      nodes, vips, rejected: { ...this.rejected },
      counters: { ...this.k, journalPending: this.journalSender.pending() },
    };
  }

  private isAlive(i: number): boolean { return this.membership.peers[i]!.status === 'alive'; }
}

const REJECT_HINT: Record<string, string> = {
  bad_hmac: 'signed with another key, or forged: check that every node has the same cluster key',
  replayed: 'a copy of a message already seen',
  old_incarnation: 'from a run of that node older than one already heard',
  clock_skew: 'its clock is more than 10 s off ours: run NTP on every node',
  wrong_address: 'from an address that is not the one its sender has in cluster.peers',
  unknown_sender: 'a sender index outside cluster.peers: do the nodes have the same peers list?',
  bad_version: 'a vipgate with another cluster protocol version',
};

// Who of the cluster is alive (issue 11, JP9-319720's monitoring daemon): a pure state machine
// `step(state, event, now) -> { state, transitions }`, time a parameter, no timers inside. The
// runtime (node.ts) feeds it every accepted heartbeat (after wire.ts's decode and ReplayGuard) and
// a tick at least once per heartbeat interval, and acts on the transitions.
//
// - A peer is `unknown` until its first accepted heartbeat, then `alive`; `dead` when silent for
//   longer than its effective dead timeout:
//     effective = min(10 x dead_after, max(dead_after, 1.5 x (longest gap of its last 100
//                 heartbeats) + heartbeat))
//   so a segment whose load delays or loses heartbeats raises the timeout as far as the delays
//   justify (the patent: "longer than network load can explain"), and it decays again as the
//   long gaps leave the last 100. A gap longer than the effective timeout of the moment was a
//   failure, not jitter: it is not fed back, so an outage does not inflate the timeout.
// - A new incarnation of a peer (it restarted) is a `restarted` transition even if it was never
//   declared dead: its flow table and claims start again, the runtime sends it a snapshot.
// - A peer's heartbeat content (load, owned, synced, down, history) is kept as last received.
// - This node's own entry stays `alive` and holds no heartbeat: the runtime knows itself.
//
// The state is never mutated: step returns a new state sharing the unchanged peers.

import type { DecodedHeartbeat } from './wire';

/** How many inter-arrival gaps per peer the effective timeout looks at. */
export const GAP_HISTORY = 100;
/** The effective timeout never grows beyond this many dead_after: a peer that is slow enough to
 *  need more is as good as dead for the VIPs it holds. */
export const MAX_TIMEOUT_FACTOR = 10;
/** The margin over the longest observed gap (1.5x, plus one interval for the next one's delay). */
export const GAP_FACTOR = 1.5;

export type PeerStatus = 'unknown' | 'alive' | 'dead';

export interface PeerState {
  readonly status: PeerStatus;
  /** The incarnation of its last accepted heartbeat, or null before the first. */
  readonly incarnation: number | null;
  /** Receiver's clock at its last accepted heartbeat, or null. */
  readonly lastHeartbeatAt: number | null;
  /** When status last changed (receiver's clock), or null while unknown. */
  readonly since: number | null;
  /** Its last heartbeat's content (after a restart: the new incarnation's first), or null before the first. */
  readonly heartbeat: DecodedHeartbeat | null;
  /** Inter-arrival gaps of its last GAP_HISTORY heartbeats (oldest first), failures left out. */
  readonly gaps: readonly number[];
  /** The dead timeout in force now, ms (reported: the API shows it per peer). */
  readonly effectiveTimeoutMs: number;
  readonly heartbeats: number;
  /** Restarts seen (new incarnations after the first). */
  readonly restarts: number;
  /** Times it was declared dead. */
  readonly deaths: number;
  /** Gaps left out of the history because they were failures (outages, or a tick that came late). */
  readonly outages: number;
}

export interface MembershipState {
  readonly self: number;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  /** By rank in cluster.peers; peers[self] is this node. */
  readonly peers: readonly PeerState[];
}

export type MembershipEvent =
  | { type: 'heartbeat'; from: number; incarnation: number; heartbeat: DecodedHeartbeat }
  | { type: 'tick' };

export type TransitionKind = 'alive' | 'dead' | 'restarted';

export interface Transition {
  peer: number;
  kind: TransitionKind;
  /** Status before. */
  from: PeerStatus;
  at: number;
  /** dead: how long it had been silent; alive/restarted: null. */
  silentMs: number | null;
  /** The effective timeout in force at the transition. */
  timeoutMs: number;
}

export interface MembershipOptions { peers: number; self: number; heartbeatMs: number; deadAfterMs: number }

export function initMembership(o: MembershipOptions, now: number): MembershipState {
  const peers: PeerState[] = [];
  for (let i = 0; i < o.peers; i++) {
    peers.push({
      status: i === o.self ? 'alive' : 'unknown', incarnation: null, lastHeartbeatAt: null, since: i === o.self ? now : null,
      heartbeat: null, gaps: [], effectiveTimeoutMs: o.deadAfterMs, heartbeats: 0, restarts: 0, deaths: 0, outages: 0,
    });
  }
  return { self: o.self, heartbeatMs: o.heartbeatMs, deadAfterMs: o.deadAfterMs, peers };
}

/** The effective dead timeout for a gap history (see the top of the file). */
export function effectiveTimeout(gaps: readonly number[], heartbeatMs: number, deadAfterMs: number): number {
  let longest = 0;
  for (const g of gaps) if (g > longest) longest = g;
  const wanted = gaps.length === 0 ? deadAfterMs : Math.max(deadAfterMs, Math.ceil(GAP_FACTOR * longest + heartbeatMs));
  return Math.min(MAX_TIMEOUT_FACTOR * deadAfterMs, wanted);
}

export function step(s: MembershipState, ev: MembershipEvent, now: number): { state: MembershipState; transitions: Transition[] } {
  const transitions: Transition[] = [];
  if (ev.type === 'tick') {
    let peers: PeerState[] | null = null;
    s.peers.forEach((p, i) => {
      if (i === s.self || p.status !== 'alive' || p.lastHeartbeatAt === null) return;
      const silent = now - p.lastHeartbeatAt;
      if (silent <= p.effectiveTimeoutMs) return;
      peers ??= [...s.peers];
      peers[i] = { ...p, status: 'dead', since: now, deaths: p.deaths + 1 };
      transitions.push({ peer: i, kind: 'dead', from: 'alive', at: now, silentMs: silent, timeoutMs: p.effectiveTimeoutMs });
    });
    return { state: peers ? { ...s, peers } : s, transitions };
  }

  const i = ev.from;
  const p = s.peers[i];
  // The runtime passes only what decode accepted (never self, never an unknown rank); refuse
  // anything else here too rather than corrupt the table.
  if (p === undefined || i === s.self) return { state: s, transitions };
  if (p.incarnation !== null && ev.incarnation < p.incarnation) return { state: s, transitions };

  const restarted = p.incarnation !== null && ev.incarnation > p.incarnation;
  let gaps = p.gaps;
  let outages = p.outages;
  if (p.lastHeartbeatAt !== null && !restarted) {
    const gap = now - p.lastHeartbeatAt;
    // A gap the peer was (or should have been) declared dead over is a failure: left out.
    if (p.status === 'alive' && gap <= p.effectiveTimeoutMs) {
      gaps = gaps.length >= GAP_HISTORY ? [...gaps.slice(gaps.length - GAP_HISTORY + 1), gap] : [...gaps, gap];
    } else {
      outages++;
    }
  } else if (restarted) {
    outages++;
  }
  const status: PeerStatus = 'alive';
  const next: PeerState = {
    status, incarnation: ev.incarnation, lastHeartbeatAt: now, since: p.status === 'alive' ? p.since : now,
    heartbeat: ev.heartbeat, gaps, effectiveTimeoutMs: effectiveTimeout(gaps, s.heartbeatMs, s.deadAfterMs),
    heartbeats: p.heartbeats + 1, restarts: p.restarts + (restarted ? 1 : 0), deaths: p.deaths, outages,
  };
  if (restarted) transitions.push({ peer: i, kind: 'restarted', from: p.status, at: now, silentMs: null, timeoutMs: next.effectiveTimeoutMs });
  if (p.status !== 'alive') transitions.push({ peer: i, kind: 'alive', from: p.status, at: now, silentMs: null, timeoutMs: next.effectiveTimeoutMs });
  const peers = [...s.peers];
  peers[i] = next;
  return { state: { ...s, peers }, transitions };
}

/** When the next peer would be declared dead without a heartbeat (for a timer), or null. */
export function nextDeadline(s: MembershipState): number | null {
  let at: number | null = null;
  s.peers.forEach((p, i) => {
    if (i === s.self || p.status !== 'alive' || p.lastHeartbeatAt === null) return;
    const d = p.lastHeartbeatAt + p.effectiveTimeoutMs + 1;
    if (at === null || d < at) at = d;
  });
  return at;
}

/** The longest gap now in a peer's history, ms (0 before two heartbeats). */
export function longestGap(p: PeerState): number {
  let m = 0;
  for (const g of p.gaps) if (g > m) m = g;
  return m;
}

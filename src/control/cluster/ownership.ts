// Who answers for each VIP (issue 11): one deterministic rule every node computes alike from the
// same inputs, so no vote is needed (as MetalLB's layer-2 election is a sort every node does).
// Pure: owners(input) and conflicts(input), no clock, no state of their own.
//
// - eligible: alive (this node always) and synced and with room (flows < 90 % of capacity).
//   When no alive node is synced, synced is not required; when no alive and synced node has
//   room, room is not required: a rule that leaves a VIP unanswered while a node could answer it
//   would turn a degraded cluster into an outage.
// - candidate(vip): `prefer` if eligible; else, for placement least_loaded, the eligible node with
//   the fewest flows (ties: priority); else the highest-priority eligible node.
// - sticky: with preempt off, and always for least_loaded (so VIPs do not follow load back and
//   forth), an eligible node that claims the VIP keeps it (several: the highest-priority one).
//   A claim is what this node answers now, or a peer's last heartbeat's `owned`. With preempt
//   on, the candidate wins — and since a node is eligible only once synced, a node that comes
//   back takes its VIPs only after it has caught up with the flow state.
// - The nat gateway is placed like a VIP with the default rule (priority, no prefer): it moves
//   with the VIPs of a node that fails.
// - Split brain: two nodes that both claim a VIP (a partition healed) are resolved by this same
//   rule; conflicts() lists such VIPs so the runtime counts them and the winner re-announces.
//
// `synced` is the runtime's: a node is synced once it has the snapshot of every peer that was
// alive when it (re)started; a running node stays synced when a peer restarts (the restarted
// peer's table is empty, there is nothing to catch up with).

import type { MembershipState } from './membership';
import type { VipPlacement } from '../config/cluster';

/** Room: a node whose table is this full takes no VIP it does not have to. */
export const ROOM_FRACTION = 0.9;

export interface NodeView {
  name: string;
  /** This node: always true (ignored). A peer: membership says alive. */
  alive: boolean;
  synced: boolean;
  flows: number;
  capacity: number;
  /** What it claims: this node, the VIPs it answers ARP for now; a peer, its last heartbeat's owned. */
  owned: ReadonlySet<number>;
}

export interface OwnershipInput {
  /** This node's rank. */
  self: number;
  /** Every node, in priority order (cluster.peers). */
  nodes: readonly NodeView[];
  /** The VIPs to place (any consistent numbering: Config.vips uses unsigned 32-bit). */
  vips: readonly number[];
  /** nat: the backends' gateway address, placed with the default rule; null: none. */
  natGateway: number | null;
  /** Non-default placements (Config.vipPlacement). */
  placement: ReadonlyMap<number, VipPlacement>;
  preempt: boolean;
}

export interface Conflict {
  vip: number;
  /** Alive nodes claiming it, in priority order. */
  claimants: number[];
  /** Who the rule gives it to (-1: nobody eligible). */
  owner: number;
}

const DEFAULT_PLACEMENT: VipPlacement = { prefer: null, placement: 'priority' };

/** The eligible nodes' ranks, in priority order (see the top of the file). */
export function eligible(input: OwnershipInput): number[] {
  const alive = input.nodes.map((_, i) => i).filter((i) => i === input.self || input.nodes[i]!.alive);
  let synced = alive.filter((i) => input.nodes[i]!.synced);
  if (synced.length === 0) synced = alive;
  const room = synced.filter((i) => hasRoom(input.nodes[i]!));
  return room.length ? room : synced;
}

export function hasRoom(n: NodeView): boolean {
  return n.capacity > 0 && n.flows < ROOM_FRACTION * n.capacity;
}

/** The owner of every VIP (and the nat gateway): a node's rank, or -1 when no node is eligible. */
export function owners(input: OwnershipInput): Map<number, number> {
  const el = eligible(input);
  const out = new Map<number, number>();
  for (const vip of input.vips) out.set(vip, ownerOf(input, el, vip, input.placement.get(vip) ?? DEFAULT_PLACEMENT));
  if (input.natGateway !== null && !out.has(input.natGateway)) out.set(input.natGateway, ownerOf(input, el, input.natGateway, DEFAULT_PLACEMENT));
  return out;
}

function ownerOf(input: OwnershipInput, el: readonly number[], vip: number, p: VipPlacement): number {
  if (el.length === 0) return -1;
  const sticky = !input.preempt || p.placement === 'least_loaded';
  if (sticky) {
    for (const i of el) if (input.nodes[i]!.owned.has(vip)) return i;
  }
  if (p.prefer !== null) {
    const i = input.nodes.findIndex((n) => n.name === p.prefer);
    if (i >= 0 && el.includes(i)) return i;
  }
  if (p.placement === 'least_loaded') {
    let best = el[0]!;
    for (const i of el) if (input.nodes[i]!.flows < input.nodes[best]!.flows) best = i;
    return best;
  }
  return el[0]!;
}

/** VIPs (and the gateway) claimed by more than one alive node, with the rule's answer. */
export function conflicts(input: OwnershipInput, computed: Map<number, number> = owners(input)): Conflict[] {
  const out: Conflict[] = [];
  for (const [vip, owner] of computed) {
    const claimants: number[] = [];
    input.nodes.forEach((n, i) => {
      if ((i === input.self || n.alive) && n.owned.has(vip)) claimants.push(i);
    });
    if (claimants.length > 1) out.push({ vip, claimants, owner });
  }
  return out;
}

/** What this node knows of itself, for nodeViews. */
export interface SelfView { synced: boolean; flows: number; capacity: number; owned: ReadonlySet<number> }

const NOTHING: ReadonlySet<number> = new Set();

/**
 * The NodeViews owners() needs, from membership (peers: alive, and their last heartbeat) and this
 * node's own view. A peer not alive claims nothing: its last heartbeat is stale.
 */
export function nodeViews(m: MembershipState, names: readonly string[], self: SelfView): NodeView[] {
  return m.peers.map((p, i) => {
    if (i === m.self) return { name: names[i]!, alive: true, ...self };
    const hb = p.heartbeat;
    const alive = p.status === 'alive';
    return {
      name: names[i]!, alive, synced: alive && hb !== null && hb.synced,
      flows: hb?.load.flows ?? 0, capacity: hb?.load.capacity ?? 0,
      owned: alive && hb !== null ? new Set(hb.ownedIps) : NOTHING,
    };
  });
}

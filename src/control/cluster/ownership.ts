// Who answers for each VIP (issue 11): one deterministic rule every node computes alike from the
// same inputs, so no vote is needed (as MetalLB's layer-2 election is a sort every node does).
// Pure: owners(input) and conflicts(input), no clock, no state of their own.
//
// - eligible: alive (this node always) and synced and with room (flows < 90 % of capacity).
//   When no alive and synced node has room, room is not required: a rule that leaves a VIP
//   unanswered while a synced node could answer it would turn a full cluster into an outage.
//   Synced stays required: while no node is synced (a cold start of the whole cluster) nobody
//   owns (-1) — otherwise every node, alone in its own view before it hears the others, would
//   take every VIP, announce it and give it back a heartbeat later. The runtime's catch-up
//   (join.ts) makes a node that hears nobody synced after a discovery period, and gives up on a
//   snapshot that never comes, so "nobody synced" does not last.
// - candidate(vip): `prefer` if eligible; else, for placement least_loaded, the eligible node with
//   the fewest flows (ties: priority); else the highest-priority eligible node.
// - sticky: with preempt off, and always for least_loaded (so VIPs do not follow load back and
//   forth), an eligible node that claims the VIP keeps it (several: the highest-priority one).
//   A claim is what this node answers now, or a peer's last heartbeat's `owned`. With preempt
//   on, the candidate wins — and since a node is eligible only once synced, a node that comes
//   back takes its VIPs only after it has caught up with the flow state.
// - The nat gateway is placed like a VIP with the default rule: the runtime lists it among the
//   addresses with prefer -1 and placement priority, so it moves with the VIPs of a node that fails.
// - Split brain: two nodes that both claim a VIP (a partition healed) are resolved by this same
//   rule; conflicts() lists such VIPs so the runtime counts them and the winner re-announces.
//
// `synced` is the runtime's: a node is synced once it has the snapshot of every peer that was
// alive when it (re)started; a running node stays synced when a peer restarts (the restarted
// peer's table is empty, there is nothing to catch up with).

/** Room: a node whose table is this full takes no VIP it does not have to. */
export const ROOM_FRACTION = 0.9;

export interface NodeView {
  /** This node: always true (ignored). A peer: membership says alive. */
  alive: boolean;
  synced: boolean;
  flows: number;
  capacity: number;
  /** What it claims: this node, the VIPs it answers ARP for now; a peer, its last heartbeat's ownedIps. */
  claims: readonly number[];
}

/** One address to place: a VIP, or the nat gateway (prefer -1, placement priority). */
export interface VipInput {
  /** Any consistent numbering (Config.vips and heartbeats' ownedIps use unsigned 32-bit). */
  ip: number;
  /** The preferred node's rank, or -1. */
  prefer: number;
  placement: 'priority' | 'least_loaded';
}

export interface OwnershipInput {
  /** This node's rank. */
  self: number;
  preempt: boolean;
  /** Every node, in priority order (cluster.peers). */
  nodes: readonly NodeView[];
  vips: readonly VipInput[];
}

export interface Conflict {
  ip: number;
  /** Alive nodes claiming it, in priority order. */
  claimants: number[];
  /** Who the rule gives it to (-1: nobody eligible). */
  owner: number;
}

/** The eligible nodes' ranks, in priority order (see the top of the file). */
export function eligible(input: OwnershipInput): number[] {
  const synced = input.nodes.map((_, i) => i).filter((i) => (i === input.self || input.nodes[i]!.alive) && input.nodes[i]!.synced);
  const room = synced.filter((i) => hasRoom(input.nodes[i]!));
  return room.length ? room : synced;
}

export function hasRoom(n: NodeView): boolean {
  return n.capacity > 0 && n.flows < ROOM_FRACTION * n.capacity;
}

/** The owner of every address: a node's rank, or -1 when no node is eligible (none alive and synced). */
export function owners(input: OwnershipInput): Map<number, number> {
  const el = eligible(input);
  const out = new Map<number, number>();
  for (const v of input.vips) out.set(v.ip, ownerOf(input, el, v));
  return out;
}

function ownerOf(input: OwnershipInput, el: readonly number[], v: VipInput): number {
  if (el.length === 0) return -1;
  if (!input.preempt || v.placement === 'least_loaded') {
    for (const i of el) if (input.nodes[i]!.claims.includes(v.ip)) return i;
  }
  if (v.prefer >= 0 && el.includes(v.prefer)) return v.prefer;
  if (v.placement === 'least_loaded') {
    let best = el[0]!;
    for (const i of el) if (input.nodes[i]!.flows < input.nodes[best]!.flows) best = i;
    return best;
  }
  return el[0]!;
}

/** Addresses claimed by more than one alive node (this one included), with the rule's answer. */
export function conflicts(input: OwnershipInput, computed: Map<number, number> = owners(input)): Conflict[] {
  const out: Conflict[] = [];
  for (const [ip, owner] of computed) {
    const claimants: number[] = [];
    input.nodes.forEach((n, i) => {
      if ((i === input.self || n.alive) && n.claims.includes(ip)) claimants.push(i);
    });
    if (claimants.length > 1) out.push({ ip, claimants, owner });
  }
  return out;
}

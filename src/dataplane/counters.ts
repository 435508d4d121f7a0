// The closed set of counters the packet path keeps, and the drop reasons.
//
// Every frame handed to the packet path is counted in frames_in and then exactly once more:
// either in frames_out (it, or the reply built in its place, is transmitted), under one drop
// reason, or in syn_held (copied into a hold slot; control later runs the copy through the packet
// path again, where it is counted anew). So frames_in = frames_out + sum(drops) + syn_held.
// The names are stable: they appear in `vipgate replay --json`, metrics and the README; add new ones at the end, never rename.

export const DROP_REASONS = [
  'truncated',            // frame shorter than a header it carries claims
  'malformed',            // a header field is impossible (IP version/IHL/total length, TCP data offset, ARP SHA)
  'bad_ip_checksum',      // IPv4 header checksum does not verify
  'own_frame',            // source MAC is vipgate's own: a frame we sent, seen again
  'too_many_vlan_tags',   // more than two 802.1Q/802.1ad tags
  'unsupported_ethertype',// not ARP or IPv4 (IPv6, LLDP, ...)
  'not_for_us',           // IPv4 not to our MAC, or not to a VIP and not a reply of a nat flow
  'arp_unsupported',      // ARP that is not Ethernet/IPv4, or an opcode other than request/reply
  'arp_reply',            // an ARP reply: learned from, nothing to send
  'arp_not_for_vip',      // an ARP request for an address that is not one of our VIPs
  'arp_conflict',         // another host claims one of our VIPs (request, reply or gratuitous ARP)
  'not_tcp',              // IPv4 to a VIP that is neither TCP nor ICMP (UDP, GRE, ...)
  'ip_fragment',          // a fragment to a VIP: no L4 header to steer on in later fragments
  'ttl_exceeded',         // nat mode routes: TTL would reach 0
  'bad_tcp_flags',        // SYN together with FIN, RST or ACK to a VIP (e.g. all flags set)
  'no_service',           // SYN to a VIP and port with no service
  'no_backend',           // the service has no usable backend (all down or drained)
  'backend_unresolved',   // the backend's MAC is not configured and not learned from ARP yet
  'unknown_flow',         // a non-SYN segment to a VIP with no flow (or an expired one)
  'flow_table_full',      // no room for a new flow (capacity reached or probe limit)
  'nat_conflict',         // nat: the backend already has a flow with the same client address and port
  'internal_error',       // an exception inside the packet path (a bug): counted at the link boundary
  'icmp_bad_checksum',    // ICMP to a VIP (or an error about a nat flow) whose checksum does not verify
  'icmp_bad_quote',       // an ICMP error whose quote is not an IPv4 header and 8 bytes after it
  'icmp_unknown_flow',    // an ICMP error to a VIP that quotes no live flow (or not TCP from the VIP)
  'icmp_unsupported',     // ICMP to a VIP that vipgate does not handle (echo reply, redirect, timestamp, echo with IP options, ...)
  'icmp_echo_off',        // an echo request to a VIP while icmp.echo is false
  'icmp_rate_limited',    // an echo request over icmp.echo_rate / echo_burst
  'syn_hold_duplicate',   // SYN-time check: a retransmit of a SYN that is already held (one copy is enough)
  'frame_too_large',      // live native: a frame longer than the receive ring's slot (MTU above it), cut by the kernel
  'arp_not_owner',        // cluster: an ARP request for a VIP (or the nat gateway) another node answers for now
  'arp_peer_owner',       // cluster: another host's ARP claiming a VIP we do not answer for (the owner's gratuitous ARP): not a conflict
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Drop reason -> counter index. `as const` objects rather than const enums (STYLE.md). */
export const Drop = Object.fromEntries(DROP_REASONS.map((n, i) => [n, i])) as { readonly [K in DropReason]: number };

export const COUNTER_NAMES = [
  'frames_in',
  'frames_out',
  'bytes_in',
  'bytes_out',
  'arp_replies',          // ARP replies sent for VIPs
  'arp_requests_seen',    // ARP requests seen (any target)
  'neigh_learned',        // new IP->MAC entries
  'neigh_updated',        // an entry's MAC changed
  'neigh_table_full',     // could not learn: no room (the frame itself is still processed)
  'flows_created',
  'flows_expired',
  'flows_active',         // gauge: flows created and not yet expired (lazily expired entries included until swept)
  'syn_retransmits',      // a SYN of a flow we already have (sent to the same backend)
  'flows_reused',         // a SYN reopened a closing flow's 5-tuple (port reuse): re-steered
  'forwarded',            // TCP frames transmitted, both directions
  'forwarded_to_backend',
  'forwarded_to_client',  // nat replies rewritten back to the VIP
  'tx_errors',            // live: the NIC refused a frame the packet path (or control) sent
  'garp_sent',            // live: gratuitous ARP announcements sent (request and reply forms)
  'arp_requests_sent',    // live: ARP requests sent to resolve or refresh backends
  'icmp_echo_replies',    // echo requests to a VIP answered by vipgate itself
  'icmp_errors_to_backend', // ICMP errors about a flow (e.g. fragmentation needed) passed to its backend
  'icmp_errors_to_client',  // nat: ICMP errors from the backends' side about a flow, rewritten back to the client
  'syn_held',             // SYN-time check: SYNs copied into a hold slot while control probes their backend
  'syn_check_forwarded',  // held SYNs released to the backend that answered its probe
  'syn_check_moved',      // held SYNs released to another member (their backend did not answer: on_fail next)
  'syn_check_resets',     // held SYNs answered with an RST to the client (on_fail reset, or no other member)
  'backend_down_resets',  // RSTs sent to a client for a flow on a backend whose health is DOWN (on_backend_down: reset)
  'verified_flows',       // gauge: live flows whose backend was verified at their SYN (sum of state bVerified)
  'syn_hold_overflow',    // SYN-time check: no free hold slot, so the SYN was forwarded unprobed (fail open)
  'rx_ring_drops',        // live native: frames the kernel dropped because the receive ring was full (never reached frames_in)
  'rx_batches',           // live: batches handed to the packet path (frames_in / rx_batches = mean batch size)
  'rx_wakeups',           // live native: times a frame woke the event loop from sleep (the rest were caught while polling)
  'link_errors',          // live native: the interface went down under the socket (picked up again when it is back up)
  'state_records_dropped',  // shared state: flow or neighbour records the attach-time check found untrustworthy (torn, impossible) and dropped
  'state_records_repaired', // shared state: records the attach-time check repaired (a nat reverse-index entry relinked to its live flow)
  'tables_bank_rejected', // worker: a published table bank failed its check (length, generation, checksum): refused, the tables in use stay
  // live native: batches by how long their first frame waited in the ring before the packet path
  // took it (the kernel's timestamp to rx; RING_WAIT_BOUNDS_US below): the
  // packet path's stalls, whatever caused them. One slot per bucket (not cumulative), then longer.
  'rx_wait_le_8us',
  'rx_wait_le_16us',
  'rx_wait_le_32us',
  'rx_wait_le_64us',
  'rx_wait_le_128us',
  'rx_wait_le_256us',
  'rx_wait_le_512us',
  'rx_wait_le_1024us',
  'rx_wait_le_2048us',
  'rx_wait_le_4096us',
  'rx_wait_le_8192us',
  'rx_wait_over_8192us',
  // cluster (issue 11): flow-state replication through the shared rings
  'repl_imported',        // peers' flow records upserted into the flow table
  'repl_rejected',        // peers' flow records refused: impossible op or state, an address 0, or a nat mapping another flow holds
  'repl_no_backend',      // peers' flow records naming a backend address these tables do not have: skipped
  'repl_journal_dropped', // flow changes not journalled: the journal ring was full (the supervisor then sends a snapshot)
  'flows_adopted',        // non-SYN segments with no flow taken over by the pick their SYN got (a peer's flow not replicated yet)
  'repl_table_full',      // peers' flow records not inserted: the flow table is full (capacity or probe limit)
] as const;

/** Upper bounds (µs) of the ring-wait buckets (afpacket.c WAIT_BUCKETS: 8 µs doubling to 8192 µs, then more). */
export const RING_WAIT_BOUNDS_US = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192] as const;

/** The first of the ring-wait slots (rx_wait_le_8us ... rx_wait_over_8192us, in bucket order). */
export const RX_WAIT_FIRST = 'rx_wait_le_8us' satisfies CounterName;

/** The ring-wait counter names in bucket order, from the bounds: checked against the list above once, at load. */
export const RX_WAIT_NAMES: readonly string[] = [...RING_WAIT_BOUNDS_US.map((us) => `rx_wait_le_${us}us`), `rx_wait_over_${RING_WAIT_BOUNDS_US[RING_WAIT_BOUNDS_US.length - 1]}us`];
RX_WAIT_NAMES.forEach((n, i) => {
  if (COUNTER_NAMES[COUNTER_NAMES.indexOf(RX_WAIT_FIRST) + i] !== n) throw new Error(`counters: ring-wait slot ${i} is not ${n} (COUNTER_NAMES and RING_WAIT_BOUNDS_US disagree)`);
});

export type CounterName = (typeof COUNTER_NAMES)[number];
export const Ctr = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, DROP_REASONS.length + i])) as { readonly [K in CounterName]: number };

/** Slots in the counters array: drop reasons first, then the other counters. */
export const COUNTER_SLOTS = DROP_REASONS.length + COUNTER_NAMES.length;

export interface CounterSnapshot {
  counters: Record<CounterName, number>;
  drops: Record<DropReason, number>;
}

export function snapshotCounters(c: Float64Array): CounterSnapshot {
  const counters = {} as Record<CounterName, number>;
  const drops = {} as Record<DropReason, number>;
  COUNTER_NAMES.forEach((n, i) => { counters[n] = c[DROP_REASONS.length + i]!; });
  DROP_REASONS.forEach((n, i) => { drops[n] = c[i]!; });
  return { counters, drops };
}

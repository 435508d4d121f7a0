// Prometheus metrics for GET /metrics.
//
// Everything is read at scrape time: the packet path only bumps slots of its Float64Array
// (counters.ts) and never touches prom-client. Each family here is a prom-client Counter or
// Gauge whose collect() resets it and refills it from the array or the control API, so
//   - counters keep `# TYPE ... counter` and the array's value (not a delta);
//   - a backend, service or transition that is gone from the API is gone from the next scrape;
//   - the registry holds one series per thing that exists now, however often it is scraped.
// The registry is private (not prom-client's global one), so two instances (tests, a replay
// beside a live run) never collide.
//
// One scrape calls each API method once: the families read through memo(), which keeps a
// result until the microtask queue next drains. Registry#metrics() runs every collect() in one
// synchronous pass (collect is called before get()'s first await), so all families of a scrape
// see the same view; a later scrape (a later task) reads afresh.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { Ctr, Drop, DROP_REASONS, RX_WAIT_FIRST, RING_WAIT_BOUNDS_US } from '../dataplane/counters';
import { ADMIN_STATES } from '../control/api-types';
import type { ControlApi, ClusterView } from '../control/api-types';

export interface MetricsSource {
  /** The packet path's counters (index by Drop / Ctr from counters.ts). Read, never written. */
  counters: Float64Array;
  /** The flow table's capacity (flows). */
  flowCapacity: number;
  api: Pick<ControlApi, 'backends' | 'services' | 'transitions' | 'reloads' | 'status'>;
  /** Health checks and events (control/health): counts read at scrape time. */
  health?: {
    checkCounts(): { ok: number; failed: number };
    typeCounts(): Array<{ type: string; count: number }>;
    hookStats(): { sent: number; failed: number; dropped: number; queued: number };
  };
  /** The cluster (issue 11), when the config has a cluster: section. */
  cluster?: () => ClusterView;
}

export interface Metrics {
  /** The Content-Type to answer /metrics with (Prometheus text format 0.0.4). */
  contentType: string;
  /** The exposition text: reads the counters and the API now. */
  text(): Promise<string>;
  /** The private registry (to merge with another, or for tests). */
  registry: Registry;
}

export interface MetricsOptions {
  /**
   * prom-client's default process and Node.js runtime metrics, under their standard names
   * (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, nodejs_heap_size_used_bytes, ...)
   * so existing dashboards work. Default true. Event loop lag is the one to watch: the packet
   * path runs on the event loop.
   */
  processMetrics?: boolean;
}

type Labels<L extends string> = Partial<Record<L, string | number>>;
type Emit<L extends string> = (labels: Labels<L>, value: number) => void;

/** Counter values from the array: a non-finite or negative slot would make prom-client throw. */
function nonNeg(v: number | undefined): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : 0;
}

/** Keep fn()'s result until the current synchronous pass (one scrape) is over. */
function memo<T>(fn: () => T): () => T {
  let have = false;
  let value: T;
  return () => {
    if (!have) {
      value = fn();
      have = true;
      queueMicrotask(() => { have = false; value = undefined as T; });
    }
    return value;
  };
}

export function createMetrics(src: MetricsSource, o: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const c = src.counters;
  const api = src.api;
  const backends = memo(() => api.backends());
  const services = memo(() => api.services());
  const status = memo(() => api.status());

  /** A counter family filled at scrape time; every emitted label set appears, 0 included. */
  function counter<L extends string>(name: string, help: string, labelNames: readonly L[], fill: (emit: Emit<L>) => void): void {
    new Counter<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        fill((labels, v) => { this.inc(labels, nonNeg(v)); });
      },
    });
  }
  function gauge<L extends string>(name: string, help: string, labelNames: readonly L[], fill: (emit: Emit<L>) => void): void {
    new Gauge<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        fill((labels, v) => { this.set(labels, Number.isFinite(v) ? v : 0); });
      },
    });
  }
  /** An unlabelled counter straight from one slot of the array. */
  function slot(name: string, help: string, i: number): void {
    counter(name, help, [], (emit) => emit({}, c[i]!));
  }

  // ---- frames through the packet path ----

  counter('vipgate_frames_total',
    'Ethernet frames handed to the packet path (direction="in") and transmitted by it, forwarded or as a reply (direction="out"). Every frame in is counted once more, out or under one drop reason: in = out + sum(vipgate_drops_total).',
    ['direction'], (emit) => {
      emit({ direction: 'in' }, c[Ctr.frames_in]!);
      emit({ direction: 'out' }, c[Ctr.frames_out]!);
    });
  counter('vipgate_bytes_total',
    'Bytes of the frames in vipgate_frames_total, from the Ethernet header (frame length as captured, no FCS).',
    ['direction'], (emit) => {
      emit({ direction: 'in' }, c[Ctr.bytes_in]!);
      emit({ direction: 'out' }, c[Ctr.bytes_out]!);
    });
  counter('vipgate_drops_total',
    'Frames the packet path did not transmit, by reason (the closed set of drop reasons listed in the README; every reason is exported, 0 included). internal_error is a bug: please report it.',
    ['reason'], (emit) => {
      for (const r of DROP_REASONS) emit({ reason: r }, c[Drop[r]]!);
    });

  // ---- ARP and neighbours ----

  slot('vipgate_arp_replies_total', 'ARP replies sent for the VIPs (answers to who-has VIP).', Ctr.arp_replies);
  slot('vipgate_arp_requests_seen_total', 'ARP requests seen on the link, for any target address.', Ctr.arp_requests_seen);
  slot('vipgate_garp_sent_total', 'Gratuitous ARP announcements sent for the VIPs (request and reply forms each count), e.g. on start-up or take-over.', Ctr.garp_sent);
  slot('vipgate_arp_requests_sent_total', 'ARP requests sent to resolve or refresh backend MAC addresses.', Ctr.arp_requests_sent);
  slot('vipgate_neighbours_learned_total', 'New IPv4-to-MAC entries learned from ARP.', Ctr.neigh_learned);
  slot('vipgate_neighbours_updated_total', 'Neighbour entries whose MAC address changed (a host moved or was replaced, or an address conflict).', Ctr.neigh_updated);
  slot('vipgate_neighbour_table_full_total', 'ARP entries not learned because the neighbour table was full (the frame itself was still processed).', Ctr.neigh_table_full);

  // ---- flows ----

  slot('vipgate_flows_created_total', 'Flows created: new TCP connections steered to a backend.', Ctr.flows_created);
  slot('vipgate_flows_expired_total', 'Flows expired (closed or idle) and removed from the flow table.', Ctr.flows_expired);
  slot('vipgate_flows_reused_total', 'SYNs that reopened a closing flow\'s 5-tuple (client port reuse) and were steered afresh.', Ctr.flows_reused);
  slot('vipgate_syn_retransmits_total', 'SYNs of a flow vipgate already has, sent to the same backend as the first.', Ctr.syn_retransmits);
  gauge('vipgate_flows_active',
    'Flows in the flow table now (entries expired but not yet swept included). New connections are dropped (flow_table_full) when this reaches vipgate_flows_capacity.',
    [], (emit) => emit({}, c[Ctr.flows_active]!));
  gauge('vipgate_flows_capacity', 'Flows the flow table can hold (fixed at start-up).', [],
    (emit) => emit({}, src.flowCapacity));

  // ---- forwarding ----

  counter('vipgate_forwarded_total',
    'TCP frames forwarded: to a backend (direction="to_backend"), and in nat mode replies rewritten back to the client (direction="to_client").',
    ['direction'], (emit) => {
      emit({ direction: 'to_backend' }, c[Ctr.forwarded_to_backend]!);
      emit({ direction: 'to_client' }, c[Ctr.forwarded_to_client]!);
    });
  // ---- ICMP ----

  slot('vipgate_icmp_echo_replies_total', 'ICMP echo requests to a VIP answered by vipgate itself (ping); over the icmp.echo_rate limit they are dropped (vipgate_drops_total{reason="icmp_rate_limited"}).', Ctr.icmp_echo_replies);
  counter('vipgate_icmp_errors_forwarded_total',
    'ICMP errors about a flow (fragmentation needed, unreachable, time exceeded) carried to its other end: to the backend (direction="to_backend"), and in nat mode from the backends\' side back to the client (direction="to_client"). Path MTU discovery through vipgate depends on them.',
    ['direction'], (emit) => {
      emit({ direction: 'to_backend' }, c[Ctr.icmp_errors_to_backend]!);
      emit({ direction: 'to_client' }, c[Ctr.icmp_errors_to_client]!);
    });
  slot('vipgate_tx_errors_total', 'Frames the network interface refused to send (packet path and control: ARP, gratuitous ARP). They are also counted in vipgate_frames_total{direction="out"} when the packet path sent them.', Ctr.tx_errors);
  slot('vipgate_rx_ring_drops_total', 'Frames the kernel dropped before vipgate saw them because the receive ring was full (native I/O): vipgate is overloaded.', Ctr.rx_ring_drops);
  slot('vipgate_rx_batches_total', 'Batches of frames handed to the packet path; vipgate_frames_total{direction="in"} divided by this is the mean batch size.', Ctr.rx_batches);
  slot('vipgate_rx_wakeups_total', 'Times a frame woke vipgate from sleep (native I/O); the other batches were caught while polling after recent traffic.', Ctr.rx_wakeups);
  counter('vipgate_rx_ring_wait_batches_total',
    'Batches by how long their first frame waited in the receive ring before the packet path took it (native I/O; le_us: the bucket\'s upper bound in µs, "inf" for longer; one count per bucket, not cumulative). The packet path\'s stalls, whatever caused them: a GC pause, a long turn, the scheduler.',
    ['le_us'], (emit) => {
      RING_WAIT_BOUNDS_US.forEach((us, b) => emit({ le_us: us }, c[Ctr[RX_WAIT_FIRST] + b]!));
      emit({ le_us: 'inf' }, c[Ctr[RX_WAIT_FIRST] + RING_WAIT_BOUNDS_US.length]!);
    });
  slot('vipgate_link_errors_total', 'Times the interface went down under the packet socket (native I/O); frames flow again when it is back up.', Ctr.link_errors);
  slot('vipgate_tables_bank_rejected_total', 'Table banks the packet worker refused (length, generation or checksum wrong): it kept the tables it had. Any is a bug or memory corruption; the next change publishes again.', Ctr.tables_bank_rejected);
  slot('vipgate_state_records_dropped_total', 'Flow or neighbour records in the shared state that the check at a worker\'s start found untrustworthy (torn or impossible) and dropped; any is worth a look at why the last worker died.', Ctr.state_records_dropped);
  slot('vipgate_state_records_repaired_total', 'Records in the shared state the check at a worker\'s start repaired (a nat reverse-index entry relinked to its live flow).', Ctr.state_records_repaired);

  // ---- backends ----

  gauge('vipgate_backend_flows', 'Live flows to the backend now.', ['backend', 'ip'], (emit) => {
    for (const b of backends()) emit({ backend: b.name, ip: b.ip }, b.flows);
  });
  counter('vipgate_backend_connections_total', 'Flows (connections) steered to the backend since vipgate started.', ['backend', 'ip'], (emit) => {
    for (const b of backends()) emit({ backend: b.name, ip: b.ip }, b.connections);
  });
  gauge('vipgate_backend_weight', 'The backend\'s weight: its share of new flows among the serving backends of equal priority (0 takes none).', ['backend', 'ip'], (emit) => {
    for (const b of backends()) emit({ backend: b.name, ip: b.ip }, b.weight);
  });
  gauge('vipgate_backend_state',
    'The backend\'s admin state: 1 for the current one of up, drain (keeps its flows, takes no new ones) and down (takes no new flows), 0 for the others.',
    ['backend', 'state'], (emit) => {
      for (const b of backends()) for (const s of ADMIN_STATES) emit({ backend: b.name, state: s }, b.state === s ? 1 : 0);
    });
  gauge('vipgate_backend_up', '1 if the backend\'s admin state is up (it may take new flows), else 0.', ['backend', 'ip'], (emit) => {
    for (const b of backends()) emit({ backend: b.name, ip: b.ip }, b.state === 'up' ? 1 : 0);
  });
  counter('vipgate_backend_transitions_total',
    'Backend state changes, by backend and the state entered (up, drain, down, or removed).',
    ['backend', 'to'], (emit) => {
      for (const t of api.transitions()) emit({ backend: t.backend, to: t.to }, t.count);
    });

  gauge('vipgate_backend_health',
    'The backend\'s operational health from vipgate\'s own checks, apart from its admin state: 1 for the current one of unknown (not checked yet: takes new flows), up, down (takes no new flows) and unchecked (health: false: always usable), 0 for the others.',
    ['backend', 'state'], (emit) => {
      for (const b of backends()) for (const s of ['unknown', 'up', 'down', 'unchecked']) emit({ backend: b.name, state: s }, b.health.state === s ? 1 : 0);
    });
  const h = src.health;
  if (h) {
    counter('vipgate_health_checks_total', 'Health checks run, by result (ok or failed), SYN-time probe results fed in included.', ['result'], (emit) => {
      const n = h.checkCounts();
      emit({ result: 'ok' }, n.ok);
      emit({ result: 'failed' }, n.failed);
    });
    counter('vipgate_events_total', 'Events (GET /v1/events) by type: health_up, health_down, failover, failback, failback_scheduled, no_backend, restored, switch, ...', ['type'], (emit) => {
      for (const e of h.typeCounts()) emit({ type: e.type }, e.count);
    });
    counter('vipgate_event_hooks_total',
      'Calls of the events webhook/command: sent (answered 2xx / exited 0), failed (error, timeout, other status), dropped (the hook queue was full: the hook is slower than the events).',
      ['result'], (emit) => {
        const st = h.hookStats();
        emit({ result: 'sent' }, st.sent);
        emit({ result: 'failed' }, st.failed);
        emit({ result: 'dropped' }, st.dropped);
      });
  }

  // ---- services ----

  gauge('vipgate_service_serving',
    'Per service (VIP:PORT, or VIP in IP mode) and member backend: 1 if the backend takes the service\'s new flows now, 0 if it is a member that does not (standby, drained or down). A service with no 1 drops new connections (no_backend).',
    ['service', 'backend'], (emit) => {
      for (const s of services()) {
        for (const m of s.members) emit({ service: s.service, backend: m.backend }, 0);
        for (const b of s.serving) emit({ service: s.service, backend: b }, 1);
      }
    });
  gauge('vipgate_service_members', 'Member backends of the service (serving or not).', ['service'], (emit) => {
    for (const s of services()) emit({ service: s.service }, s.members.length);
  });

  // ---- control ----

  counter('vipgate_config_reloads_total', 'Config file reloads: applied (result="ok") or rejected, nothing changed (result="failed").', ['result'], (emit) => {
    const r = api.reloads();
    emit({ result: 'ok' }, r.ok);
    emit({ result: 'failed' }, r.failed);
  });
  gauge('vipgate_state_generation', 'Generation of the running state: bumped by every applied change (API call or reload), persisted across restarts.', [],
    (emit) => emit({}, status().generation));
  // The packet worker (a separate process under the supervisor): only where there is one.
  const worker = () => status().worker;
  counter('vipgate_worker_restarts_total', 'Exits of the packet worker the supervisor did not ask for (crash, kill, abort), each answered with a new worker (with back-off when they repeat). Absent when the packet path runs in the supervisor\'s own process.', [],
    (emit) => { const w = worker(); if (w) emit({}, w.restarts); });
  gauge('vipgate_worker_up', 'Whether a packet worker is forwarding (1) or not (0: starting, waiting out a restart back-off, or stopped): frames wait in the kernel\'s ring meanwhile.', [],
    (emit) => { const w = worker(); if (w) emit({}, w.state === 'running' ? 1 : 0); });

  // ---- cluster (issue 11): only with a cluster: section ----
  if (src.cluster) {
    const cl = memo(() => src.cluster!());
    const nodes = () => cl().nodes ?? [];
    gauge('vipgate_cluster_node_up', 'Per cluster node: 1 while this node counts it alive (itself included), 0 when unknown or declared dead.', ['node'],
      (emit) => { for (const n of nodes()) emit({ node: n.name }, n.state === 'alive' || n.state === 'self' ? 1 : 0); });
    gauge('vipgate_cluster_dead_after_seconds', 'Per peer: the silence after which it is declared dead: dead_after, raised by the heartbeat jitter and loss observed.', ['node'],
      (emit) => { for (const n of nodes()) if (!n.self) emit({ node: n.name }, n.effectiveDeadAfterMs / 1000); });
    gauge('vipgate_cluster_synced', '1 once this node has caught up with its peers\' flows (it owns no VIP before).', [], (emit) => emit({}, cl().synced ? 1 : 0));
    gauge('vipgate_cluster_vip_here', 'Per VIP (and the nat gateway): 1 when this node owns it and answers ARP for it.', ['vip'],
      (emit) => { for (const v of cl().vips ?? []) emit({ vip: v.vip }, v.here ? 1 : 0); });
    const NONE = { takeovers: 0, releases: 0, splitBrains: 0, heartbeatsSent: 0, heartbeatsReceived: 0, recordsSent: 0, recordsReceived: 0, journalPending: 0 };
    const k = () => cl().counters ?? NONE; // { enabled: false } while the cluster part starts
    counter('vipgate_cluster_ownership_changes_total', 'VIPs this node took over (kind="takeover") or let go of (kind="release").', ['kind'], (emit) => {
      emit({ kind: 'takeover' }, k().takeovers);
      emit({ kind: 'release' }, k().releases);
    });
    counter('vipgate_cluster_split_brains_total', 'VIPs found claimed by this node and another at once (after a partition heals), resolved by the ownership rule.', [], (emit) => emit({}, k().splitBrains));
    counter('vipgate_cluster_heartbeats_total', 'Heartbeats sent (one per peer) and accepted.', ['direction'], (emit) => {
      emit({ direction: 'sent' }, k().heartbeatsSent);
      emit({ direction: 'received' }, k().heartbeatsReceived);
    });
    counter('vipgate_cluster_messages_rejected_total', 'Cluster messages refused, by reason (bad_hmac, replayed, old_incarnation, clock_skew, truncated, malformed, ...): none changed anything.', ['reason'],
      (emit) => { for (const [r, n] of Object.entries(cl().rejected ?? {})) emit({ reason: r }, n); });
    counter('vipgate_cluster_replication_records_total', 'Flow records sent to peers (each peer counted) and received from them.', ['direction'], (emit) => {
      emit({ direction: 'sent' }, k().recordsSent);
      emit({ direction: 'received' }, k().recordsReceived);
    });
    gauge('vipgate_cluster_replication_lag_records', 'Per peer: flow records it says it sent us that have not arrived yet (in flight or lost).', ['node'],
      (emit) => { for (const n of nodes()) if (!n.self && n.replication.lagRecords !== null) emit({ node: n.name }, n.replication.lagRecords); });
    gauge('vipgate_cluster_journal_pending_records', 'Flow changes waiting in the journal to be sent to the peers.', [], (emit) => emit({}, k().journalPending));
  }

  if (o.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  return {
    contentType: registry.contentType,
    text: () => registry.metrics(),
    registry,
  };
}


// The runtime API's contract: paths, request and response shapes, error codes. Shared by the
// server (control/api.ts), the controller that does the work (control/controller.ts), the CLI
// client and `vipgate agent` (cli/client.ts, cli/agent.ts). JSON over HTTP, versioned paths.
//
//   GET    /v1/status                         StatusView
//   GET    /v1/vips                           { vips: VipView[] }
//   GET    /v1/services                       { services: ServiceView[] }
//   POST   /v1/services/{service}/switch      SwitchRequest -> { service: ServiceView }
//   GET    /v1/backends                       { backends: BackendView[] }
//   GET    /v1/backends/{name}                { backend: BackendView }
//   POST   /v1/backends                       RegisterRequest -> 201 (new) / 200 (renewed) { backend, created }
//   PATCH  /v1/backends/{name}                SetBackendRequest -> { backend: BackendView }
//   DELETE /v1/backends/{name}[?force=true]   -> 202 { backend: BackendView } (draining; force: removed now)
//   GET    /v1/flows?vip=&port=&backend=&client=&state=&limit=&cursor=   FlowPage
//   GET    /v1/neighbours                     { neighbours: NeighbourView[] }
//   GET    /v1/counters                       CounterSnapshot
//   GET    /v1/events?since=&limit=&wait=     EventPage (wait: seconds to wait for a new event, long poll)
//   POST   /v1/reload                         -> { generation, changes: string[] }  (reads the config file again)
//   POST   /v1/upgrade                        { to } -> 202 { from, to } (`vipgate run` only: hand over to another build)
//   GET    /metrics                           Prometheus text format
//
// {service} is "VIP:PORT" (port mode) or "VIP" (IP mode: every port of the VIP).
// Every error is { error: ApiErrorBody } with the HTTP status given by API_ERROR_STATUS.

import { VipgateError } from './errors';
import type { CounterSnapshot } from '../dataplane/counters';
import type { HealthView } from './health/manager';
import type { EventPage } from './health/events';
export type { HealthView, EventPage };

export const API_PREFIX = '/v1';
export const DEFAULT_API_LISTEN = '127.0.0.1:9180';
/** Largest request body accepted (a registration is well under 1 KiB). */
export const API_MAX_BODY = 64 * 1024;
/** Environment variable holding the bearer token (else the config's api.token). */
export const TOKEN_ENV = 'VIPGATE_API_TOKEN';
/** Environment variable with the API address for the CLI (else DEFAULT_API_LISTEN). */
export const API_ENV = 'VIPGATE_API';

export const PRIORITY = { min: 1, max: 255, default: 100 } as const;
export const WEIGHT = { min: 0, max: 1000, default: 100 } as const;
/** Lease seconds: 0 = never expires. */
export const LEASE = { min: 0, max: 86_400, default: 0 } as const;

export type AdminState = 'up' | 'drain' | 'down';
export const ADMIN_STATES: readonly AdminState[] = ['up', 'drain', 'down'];
/** Role changes PATCH also takes: active = switch every service it serves to it; standby = hand each to the next up member. */
export type RoleState = 'active' | 'standby';
export const SET_STATES: readonly (AdminState | RoleState)[] = [...ADMIN_STATES, 'active', 'standby'];

// ---- requests ----

export interface RegisterRequest {
  /** [A-Za-z0-9_.-]{1,64}, unique among backends (config and registered). */
  name: string;
  /** The backend's own IPv4 address. */
  ip: string;
  /** Optional: skips ARP resolution. */
  mac?: string | null;
  /** What it serves: "VIP" (IP mode) or "VIP:PORT" (port mode), one or a list. New VIPs are announced. */
  serves: string | string[];
  /** Higher is preferred; equal top priorities share new flows by weight. */
  priority?: number;
  weight?: number;
  /** Seconds; the registration drains if not renewed in time (re-POST the same body). 0 = never. */
  lease?: number;
}

export interface SetBackendRequest {
  /**
   * up: takes new flows; drain: keeps its flows, no new ones; down: no new flows (existing ones
   * still forwarded). active: up, and pinned as the active member of every service it serves;
   * standby: each service it is active in is switched to the next up member.
   */
  state?: AdminState | RoleState;
  weight?: number;
}

export interface SwitchRequest {
  /** The member to make active for the service (the standby's take-over command). */
  backend: string;
}

// ---- responses ----

export type Source = 'config' | 'api';

export interface MemberView {
  backend: string;
  priority: number;
  weight: number;
  state: AdminState;
  /** active: takes new flows of this service now; standby: only if the active ones fail. */
  role: 'active' | 'standby';
}

export interface ServiceView {
  /** "VIP:PORT" or "VIP". */
  service: string;
  vip: string;
  /** 0 = IP mode. */
  port: number;
  mode: 'ip' | 'port';
  source: Source;
  /** The member made active by a switch, or null (highest priority wins). */
  pinned: string | null;
  /** Members in preference order. */
  members: MemberView[];
  /** Backends taking its new flows now (empty: new connections are dropped, no_backend). */
  serving: string[];
  failover: {
    /** Spare pool name, or null. */
    spares: string | null;
    preempt: boolean;
    holdDownMs: number;
    onBackendDown: 'reset' | 'keep';
    /** The standby or spare that took over from the active group, or null. */
    takenOverBy: string | null;
    /** When new flows return to a recovered better member (hold-down), or null. */
    failbackAt: string | null;
  };
}

export interface VipView {
  vip: string;
  /** config: listed in the file; api: added by a registration; nat_gateway: the nat gateway address. */
  source: Source | 'nat_gateway';
  services: string[];
  /** This node answers ARP for it now (always true without a cluster; issue 11: the owner only). */
  arp: boolean;
}

export interface BackendView {
  name: string;
  ip: string;
  mac: string | null;
  /** Where the MAC comes from: given (config or registration), learned by ARP, or not known yet. */
  macSource: 'given' | 'arp' | null;
  state: AdminState;
  weight: number;
  source: Source;
  /** pinned: the member a switch or `set --state active|standby` pinned as the service's active one (kept
   *  across restarts until `switch SERVICE --auto`), or null. */
  serves: Array<{ service: string; priority: number; role: 'active' | 'standby'; pinned: string | null }>;
  /** Live flows now. */
  flows: number;
  /** Flows created since vipgate started. */
  connections: number;
  /** Registered with a lease: its length and seconds left; null when it does not expire. */
  lease: { seconds: number; expiresIn: number } | null;
  /** Unregistered (or lease expired): draining; removed once its flows end. */
  leaving: boolean;
  /** Operational health from vipgate's own checks, kept apart from the admin state (never persisted). */
  health: HealthView;
}

export interface StatusView {
  version: string;
  pid: number;
  uptimeSeconds: number;
  interface: string | null;
  mode: 'dsr' | 'nat';
  mac: string;
  configFile: string;
  stateFile: string | null;
  /** Bumped by every applied change (API, reload); persisted. */
  generation: number;
  vips: number;
  services: number;
  backends: { total: number; up: number; drain: number; down: number };
  flows: { active: number; capacity: number };
  counters: CounterSnapshot['counters'];
  drops: CounterSnapshot['drops'];
  /** The packet worker process (null: the packet path runs in this process, e.g. replay). */
  worker: WorkerView | null;
  /** The shared-memory region the flows live in (null: ordinary memory, gone with the process). */
  sharedState: SharedStateView | null;
}

export interface WorkerView {
  /** The worker's PID (kill this one to test a crash), null between two workers. */
  pid: number | null;
  /** When the current worker started (ISO 8601), null between two workers. */
  startedAt: string | null;
  /** Exits the supervisor did not ask for, each answered with a new worker. */
  restarts: number;
  /** The last such exit: how it ended ("killed by SIGKILL", "exit code 3: why") and when. */
  lastExit: { reason: string; at: string } | null;
  state: 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped';
  /** state backoff: when the next worker starts (ISO 8601). */
  nextStartAt: string | null;
  /** How the running worker is scheduled, read from /proc: "SCHED_FIFO 10" (io.rt_priority), "nice -10"; null between two workers. */
  scheduling: string | null;
}

export interface SharedStateView {
  file: string;
  bytes: number;
  /** Which pages it is on, and the mount that decides it (src/shm/pages.ts). */
  pages: string;
  /** Whether those are 2 MiB pages (a tmpfs mounted with huge=). */
  hugePages: boolean;
  layoutVersion: number;
  /** When the region was created (ISO 8601): older than this vipgate when flows were carried over. */
  createdAt: string;
  /** The vipgate version that created it. */
  createdBy: string;
}

export interface FlowView {
  client: string;      // "ip:port"
  vip: string;         // "ip:port"
  backend: string;
  backendIp: string;
  state: 'syn' | 'established' | 'closing';
  ageSeconds: number;
  idleSeconds: number;
  packetsIn: number;
  packetsOut: number;
}

export interface FlowQuery {
  vip?: string;
  port?: number;
  backend?: string;
  client?: string;
  state?: FlowView['state'];
  /** 1..1000, default 100. */
  limit?: number;
  /** Opaque: from the previous page's `next`. */
  cursor?: string;
}

export interface FlowPage {
  flows: FlowView[];
  /** Pass as cursor for the next page; null at the end. */
  next: string | null;
}

export interface NeighbourView { ip: string; mac: string; ageSeconds: number }

export interface ReloadResult { generation: number; changes: string[] }

// ---- errors ----

export const API_ERROR_STATUS = {
  EAPI_BAD_JSON: 400,          // body is not JSON (or not an object)
  EAPI_INVALID: 400,           // a field is missing, of the wrong type, or out of range (see `field`)
  EAPI_UNAUTHORIZED: 401,      // bearer token missing or wrong
  EAPI_NOT_FOUND: 404,         // no such path
  EAPI_UNKNOWN_BACKEND: 404,
  EAPI_UNKNOWN_SERVICE: 404,
  EAPI_METHOD_NOT_ALLOWED: 405,
  EAPI_EXISTS: 409,            // a backend of that name exists with a different definition
  EAPI_CONFLICT: 409,          // the change contradicts the current state (IP in use, VIP is a backend, ...)
  EAPI_CONFIG_OWNED: 409,      // defined in the config file: change the file and reload
  EAPI_BODY_TOO_LARGE: 413,
  EAPI_UNSUPPORTED_MEDIA_TYPE: 415,
  ECONFIG_INVALID: 422,        // reload: the file is invalid; nothing changed
  ECONFIG_SYNTAX: 422,
  ECONFIG_IO: 422,
  EAPI_STATE_WRITE: 503,       // the state file could not be written: the change was not applied
  EAPI_INTERNAL: 500,
} as const;
export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

export interface ApiErrorBody {
  code: ApiErrorCode;
  /** What is wrong and what to do. */
  message: string;
  /** The request field at fault, e.g. "serves[1]". */
  field?: string;
  /** reload: every problem found in the file. */
  issues?: string[];
}

export class ApiError extends VipgateError {
  readonly status: number;
  constructor(code: ApiErrorCode, message: string, readonly field?: string, readonly issues?: string[]) {
    super(code, message);
    this.status = API_ERROR_STATUS[code];
  }
  body(): ApiErrorBody {
    return { code: this.code as ApiErrorCode, message: this.message, ...(this.field ? { field: this.field } : {}), ...(this.issues ? { issues: this.issues } : {}) };
  }
}

/** What the API server needs from the controller. Mutations validate `body` themselves (throw ApiError). */
export interface ControlApi {
  status(): StatusView;
  vips(): VipView[];
  services(): ServiceView[];
  backends(): BackendView[];
  backend(name: string): BackendView;
  flows(q: FlowQuery): FlowPage;
  neighbours(): NeighbourView[];
  counters(): CounterSnapshot;
  register(body: unknown): { backend: BackendView; created: boolean };
  setBackend(name: string, body: unknown): BackendView;
  unregister(name: string, force: boolean): BackendView;
  switchService(service: string, body: unknown): ServiceView;
  reload(): ReloadResult;
  /** Backend health transitions so far, for metrics: (backend, to-state) -> count. */
  transitions(): Array<{ backend: string; to: AdminState | 'removed'; count: number }>;
  /** Config reloads so far. */
  reloads(): { ok: number; failed: number };
  /** Recent events after `since` (a seq); with wait > 0 (seconds), waits that long for one to come. */
  events(q: EventQuery): EventPage | Promise<EventPage>;
}

export interface EventQuery { since?: number; limit?: number; wait?: number }

/** GET /v1/cluster and `vipgate cluster` (issue 11): this node's view of the cluster. */
export interface ClusterView {
  /** false: no `cluster:` section in the config (the other fields are absent). */
  enabled: boolean;
  node?: string;
  /** When this node's cluster part started (its incarnation, ISO 8601). */
  incarnation?: string;
  /** This node has caught up with its peers' flows (a snapshot from each live peer): only then may it own VIPs. */
  synced?: boolean;
  port?: number;
  heartbeatMs?: number;
  deadAfterMs?: number;
  preempt?: boolean;
  nodes?: ClusterNodeView[];
  vips?: ClusterVipView[];
  /** Messages refused, by reason (bad_hmac, replayed, clock_skew, truncated, ...): none of them changed anything. */
  rejected?: Record<string, number>;
  counters?: ClusterCounters;
}

export interface ClusterNodeView {
  name: string;
  address: string;
  /** 1 = highest. */
  priority: number;
  self: boolean;
  state: 'self' | 'unknown' | 'alive' | 'dead';
  /** ms since its last accepted heartbeat (null: never). */
  lastHeardMs: number | null;
  /** The silence after which it is declared dead: dead_after, raised by the jitter and loss observed. */
  effectiveDeadAfterMs: number;
  /** Its clock minus ours, as its last heartbeat showed (transit included), ms; null: never heard. */
  clockSkewMs: number | null;
  load: { flows: number; capacity: number; pps: number; cpu: number } | null;
  owns: string[];
  synced: boolean | null;
  /** Times it started again (a new incarnation) while we ran. */
  restarts: number;
  replication: {
    /** Flow records we sent it (journal and snapshots). */
    sent: number;
    /** Flow records we received from it. */
    received: number;
    /** Records it says it sent us that have not arrived (in flight or lost), from its last heartbeat. */
    lagRecords: number | null;
    /** ms since the last flow records from it (null: none yet). */
    lastRecordsMs: number | null;
    snapshot: 'none' | 'requested' | 'received' | 'sending' | 'sent';
  };
}

export interface ClusterVipView {
  vip: string;
  /** The node that answers ARP for it (this node's computation), null: none eligible. */
  owner: string | null;
  here: boolean;
  /** How its owner is chosen: priority, prefer NODE, least_loaded; gateway for the nat gateway address. */
  rule: string;
}

export interface ClusterCounters {
  heartbeatsSent: number;
  heartbeatsReceived: number;
  takeovers: number;
  releases: number;
  splitBrains: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  recordsSent: number;
  recordsReceived: number;
  /** Peer records that did not fit in the import ring (the worker is behind). */
  importRingFull: number;
  /** Journal records waiting to be sent now. */
  journalPending: number;
  garpSent: number;
}

// The SYN hold queue of the SYN-time check (issue 8 item 5, after JP2002-207647): a bounded set
// of preallocated slots, each holding a copy of one client SYN while control probes the backend
// it was steered to. The packet path fills a slot and pushes its index on the `pending` ring;
// control drains the ring once per event-loop turn (no callback per packet), probes, and then
// runs the copy through the packet path again (Dataplane.runHeld) or answers it with an RST
// (Dataplane.resetHeld), and frees the slot.
//
// A copy, not a reference: the receive buffer is borrowed and overwritten by the next frame
// (STYLE.md, point 4). A full queue is a counted drop (syn_hold_full): the client retransmits
// its SYN a second later, when slots have been freed — the queue is sized for the SYNs that
// arrive within one probe timeout, not for a flood.

/** Bytes per slot: a standard frame (1518) with two VLAN tags fits. See SynHold.fits. */
export const HOLD_SLOT_BYTES = 1600;
/** Backends a held SYN may be moved away from before it is forwarded unprobed (or reset). */
export const HOLD_MAX_EXCLUDED = 4;

export const HOLD_FREE = 0;
/** Held; its index is on the pending ring (or control took it and is probing its backend). */
export const HOLD_HELD = 1;

export class SynHold {
  readonly capacity: number;
  /** One Buffer per slot (views into one allocation), so control sends a slot without copying. */
  readonly frames: Buffer[];
  readonly len: Int32Array;
  /** The backend slot the SYN is held for (the one being probed). */
  readonly backend: Int32Array;
  /** Service index of the SYN (for moving it to another member). */
  readonly service: Int32Array;
  /** When the packet path held it (ms, its clock). */
  readonly heldAt: Float64Array;
  /** Flow key (client IP, VIP, client port << 16 | VIP port), signed as on the packet path. */
  readonly keyCli: Int32Array;
  readonly keyVip: Int32Array;
  readonly keyPorts: Int32Array;
  /** Backends this SYN must not go to (their probe failed), HOLD_MAX_EXCLUDED per slot. */
  readonly excluded: Int32Array;
  readonly nExcluded: Uint8Array;
  readonly state: Uint8Array;
  /**
   * 1: probe its backend even if something vouched for it lately: the SYN is a retransmit of a
   * half-open flow, or its backend's recent new flows went unanswered (Dataplane.needsProbe).
   */
  readonly mustProbe: Uint8Array;
  private readonly freeStack: Int32Array;
  private freeTop: number;
  private readonly ring: Int32Array;
  private head = 0;
  private queued = 0;
  /** Slots in use (held or being probed). */
  used = 0;
  /**
   * How long new flows' SYNs may go unanswered before their backend is suspect (ms): control sets
   * it to the probe timeout, the longest a healthy backend takes to answer (see Dataplane.needsProbe).
   */
  unansweredMs = 20;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) throw new Error(`hold: capacity must be an integer 1..65536, got ${capacity}`);
    this.capacity = capacity;
    const mem = Buffer.alloc(capacity * HOLD_SLOT_BYTES);
    this.frames = Array.from({ length: capacity }, (_, i) => mem.subarray(i * HOLD_SLOT_BYTES, (i + 1) * HOLD_SLOT_BYTES));
    this.len = new Int32Array(capacity);
    this.backend = new Int32Array(capacity);
    this.service = new Int32Array(capacity);
    this.heldAt = new Float64Array(capacity);
    this.keyCli = new Int32Array(capacity);
    this.keyVip = new Int32Array(capacity);
    this.keyPorts = new Int32Array(capacity);
    this.excluded = new Int32Array(capacity * HOLD_MAX_EXCLUDED);
    this.nExcluded = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.mustProbe = new Uint8Array(capacity);
    this.freeStack = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeStack[i] = capacity - 1 - i;
    this.freeTop = capacity;
    this.ring = new Int32Array(capacity);
  }

  /** True when a frame of `len` bytes fits a slot (a jumbo SYN with data does not: it is forwarded unprobed). */
  fits(len: number): boolean { return len <= HOLD_SLOT_BYTES; }

  /** The held slot with this flow key, or -1 (a retransmit of a SYN already held). Scans the slots in use only when any are. */
  find(cli: number, vip: number, ports: number): number {
    if (this.used === 0) return -1;
    for (let s = 0; s < this.capacity; s++) {
      if (this.state[s] !== HOLD_FREE && this.keyPorts[s] === ports && this.keyCli[s] === cli && this.keyVip[s] === vip) return s;
    }
    return -1;
  }

  /**
   * Copy buf[off, off+len) into a free slot held for backend `b` and put it on the pending ring.
   * Returns the slot, or -1 when every slot is in use.
   */
  put(buf: Uint8Array, off: number, len: number, b: number, svc: number, cli: number, vip: number, ports: number, now: number, mustProbe: boolean): number {
    if (this.freeTop === 0) return -1;
    const s = this.freeStack[--this.freeTop]!;
    const dst = this.frames[s]!;
    for (let i = 0; i < len; i++) dst[i] = buf[off + i]!; // no subarray view per SYN
    this.len[s] = len;
    this.keyCli[s] = cli; this.keyVip[s] = vip; this.keyPorts[s] = ports;
    this.heldAt[s] = now;
    this.nExcluded[s] = 0;
    this.state[s] = HOLD_HELD;
    this.used++;
    this.requeue(s, b, svc, mustProbe);
    return s;
  }

  /** Hold slot s (already filled) for backend b: after a failed probe moved it to b, which needs a probe too. */
  requeue(s: number, b: number, svc: number, mustProbe: boolean): void {
    this.mustProbe[s] = mustProbe ? 1 : 0;
    this.backend[s] = b;
    this.service[s] = svc;
    // The ring has one entry per slot and a slot is on it at most once at a time: it cannot overflow.
    this.ring[(this.head + this.queued) % this.capacity] = s;
    this.queued++;
  }

  /** Next slot control has not seen yet, or -1. */
  takePending(): number {
    if (this.queued === 0) return -1;
    const s = this.ring[this.head]!;
    this.head = (this.head + 1) % this.capacity;
    this.queued--;
    return s;
  }

  /** True when backend b must not take the SYN in slot s (its probe failed). */
  excludes(s: number, b: number): boolean {
    const n = this.nExcluded[s]!, base = s * HOLD_MAX_EXCLUDED;
    for (let i = 0; i < n; i++) if (this.excluded[base + i] === b) return true;
    return false;
  }

  /** Exclude backend b for slot s; false when the list is full (the caller stops moving the SYN then). */
  exclude(s: number, b: number): boolean {
    if (this.excludes(s, b)) return true;
    const n = this.nExcluded[s]!;
    if (n >= HOLD_MAX_EXCLUDED) return false;
    this.excluded[s * HOLD_MAX_EXCLUDED + n] = b;
    this.nExcluded[s] = n + 1;
    return true;
  }

  free(s: number): void {
    if (this.state[s] === HOLD_FREE) return;
    this.state[s] = HOLD_FREE;
    this.freeStack[this.freeTop++] = s;
    this.used--;
  }
}

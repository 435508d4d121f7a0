// The one interface between vipgate and a live NIC, batch-shaped (issue 10): the link fills a
// batch (one memory region, offsets, lengths), the packet path runs over it (src/link/pump.ts)
// and marks what to send, and the link sends those frames and takes the batch back.
//
// Two backends sit behind it:
//   native  AF_PACKET with a TPACKET_V2 receive ring and sendmmsg (afpacket.c / afpacket.ts):
//           frames are processed in place in the ring, many per call.
//   pcap    `cap` (libpcap, NAN, one JavaScript call per frame): batches of one, the portable
//           fallback. Its receive buffer is borrowed: overwritten by the next frame.
// `openNic` picks one from `io` and says why (see chooseIo).

import { VipgateError } from '../src/control/errors';
import { Batch, newBatch } from '../src/link/pump';
import { afpacketAvailable, openAfPacket } from './afpacket';

export type IoKind = 'native' | 'pcap';

/** What a link counts itself (beside the packet path's counters). Totals since open. */
export interface NicStats {
  /** Frames the kernel dropped because the receive ring was full (native; pcap: not known, 0). */
  ringDrops: number;
  /** Batches handed to the packet path. */
  batches: number;
  /** Times the event loop was woken from sleep by a frame (native; pcap: every batch). */
  wakeups: number;
  /** The interface went down under the socket (native; it is picked up again when it comes back). */
  linkErrors: number;
  lastLinkError: string | null;
  /**
   * Native: batches by how long their first frame waited in the ring (the kernel's receive
   * timestamp to the packet path taking it), one count per bucket of RING_WAIT_BOUNDS_US
   * (src/dataplane/counters.ts) and one
   * for longer; the packet path's stalls. pcap: empty (libpcap does not say).
   */
  ringWait: number[];
}


export interface NicLink {
  readonly name: string;
  readonly io: IoKind;
  /** Where rx() puts frames; the buffer may be a kernel ring: valid until close(). */
  readonly batch: Batch;
  /**
   * Call `turn` whenever frames may be waiting; `turn` calls rx() then txRelease(). Each call
   * handles at most its budget, so the event loop turns between batches under full load.
   */
  start(turn: () => void): void;
  /** Fill batch[0, n) with up to `max` waiting frames; returns n (0: none waiting). */
  rx(max: number): number;
  /** Send the frames of the last batch whose length the packet path left positive, and give the batch back. Returns the number that failed to send. */
  txRelease(n: number): number;
  /** Transmit buf[0, len) now (control traffic: ARP). Returns false when the send failed (the caller counts it). */
  send(buf: Uint8Array, len: number): boolean;
  /** The last send error's text, for logs. */
  readonly lastSendError: string | null;
  stats(): NicStats;
  /** The socket's descriptor (native), to hand to another process; null for pcap. */
  readonly fd: number | null;
  close(): void;
}

export interface NicOptions {
  /** BPF filter (tcpdump syntax) admitting only what vipgate needs. */
  filter: string;
  /** Kernel buffer size in bytes (pcap), or ring size (native: frames * 2048). */
  bufferSize?: number;
  /** Native: keep the event loop awake this long after the last frame (µs); 0 = always sleep. */
  spinUs?: number;
  /** Native: largest batch (frames per turn of the event loop). */
  batch?: number;
  /** Native: ring slot size (power of two, 256..65536; default 2048); longer frames count as frame_too_large. */
  frameSize?: number;
}

/** The configured choice: `auto` (no `io:` in the config) is native where it works, else pcap. */
export type IoChoice = IoKind | 'auto';

/**
 * Open `iface` with the chosen backend; returns the link and a sentence saying which backend and
 * why (vipgate logs it at start). Throws VipgateError with a code that says what to fix.
 */
export function openNic(iface: string, o: NicOptions & { io?: IoChoice }): { nic: NicLink; why: string } {
  const want = o.io ?? 'auto';
  if (want === 'pcap') return { nic: openPcap(iface, o), why: 'io: pcap in the config' };
  const avail = afpacketAvailable();
  if (!avail.ok) {
    if (want === 'native') throw nativeUnavailable(avail.why);
    return { nic: openPcap(iface, o), why: `native I/O is not available (${avail.why}); using libpcap` };
  }
  try {
    return { nic: openAfPacket(iface, o), why: want === 'native' ? 'io: native in the config' : 'native AF_PACKET ring (the default where it works)' };
  } catch (e) {
    // Errors the user must fix (no such interface, no permission, a bad filter) are the same
    // for both backends: report them rather than hide them behind a fallback.
    const code = (e as VipgateError).code;
    if (want === 'native' || code === 'ENIC_NOT_FOUND' || code === 'ENIC_PERMISSION' || code === 'ENIC_FILTER') throw e;
    return { nic: openPcap(iface, o), why: `the AF_PACKET ring could not be set up (${(e as Error).message}); using libpcap` };
  }
}

interface CapModule {
  Cap: new () => {
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    on(ev: 'packet', cb: (nbytes: number, truncated: boolean) => void): void;
    send(buf: Buffer, len: number): void;
    close(): void;
    setMinBytes?: (n: number) => void;
  };
}

function loadCap(): CapModule {
  try {
    return require('cap') as CapModule;
  } catch (e) {
    const why = (e as Error).message;
    if (/NODE_MODULE_VERSION|compiled against a different Node\.js/.test(why)) {
      throw new VipgateError('ENIC_NO_LIBPCAP',
        `the libpcap binding (npm package "cap") was built for another Node.js (${why.split('\n')[0]}); rebuild it in the vipgate checkout: npm rebuild cap`);
    }
    throw new VipgateError('ENIC_NO_LIBPCAP',
      `the libpcap binding (npm package "cap") is not available: ${why.split('\n')[0]}\n` +
      'it did not build during npm install (npm skips a failed optional addon quietly); install libpcap\'s headers and a compiler, ' +
      'then install again in the vipgate checkout, which builds it: apt-get install -y libpcap-dev g++ make python3 && npm install');
  }
}

/**
 * Throws (with the fix) unless the binding `io` needs loads: `vipgate run` asks first, before
 * touching anything. auto needs either: native, else libpcap (ENIC_NO_LIBPCAP names its fix).
 */
export function checkNicBinding(io: IoChoice = 'auto'): void {
  if (io === 'pcap') { loadCap(); return; }
  const avail = afpacketAvailable();
  if (avail.ok) return;
  if (io === 'native') throw nativeUnavailable(avail.why);
  loadCap();
}

function nativeUnavailable(why: string): VipgateError {
  return new VipgateError('ENIC_NATIVE', `io: native was asked for, but ${why}; rebuild it (npm run build:native) or set io: pcap`);
}

/** Classify an open failure's text into a VipgateError that says what to fix (both backends). */
export function nicOpenError(iface: string, msg: string, filter: string, code = ''): VipgateError {
  if (code === 'EPERM' || code === 'EACCES' || /permission|not permitted|EPERM|EACCES/i.test(msg)) {
    return new VipgateError('ENIC_PERMISSION',
      `cannot capture on ${iface}: ${msg}. vipgate needs CAP_NET_RAW: run it as root, or with --cap-add NET_RAW in docker`);
  }
  if (code === 'ENODEV' || code === 'ENXIO' || /No such device|doesn't exist|SIOCGIFHWADDR/i.test(msg)) {
    return new VipgateError('ENIC_NOT_FOUND', `cannot capture on ${iface}: ${msg}`);
  }
  if (code === 'EFILTER' || /syntax|filter/i.test(msg)) {
    return new VipgateError('ENIC_FILTER', `the capture filter was refused (${msg}): ${filter}`);
  }
  return new VipgateError('ENIC_OPEN', `cannot open ${iface} for capture: ${msg}`);
}

/**
 * Cap objects whose open failed. cap's destructor (run when V8 collects the object) closes a
 * half-opened handle and then releases a reference it never took, which aborts the process
 * (nan_object_wrap.h: `!persistent().IsEmpty()`): kept reachable, they are never collected.
 */
const failedCaps: unknown[] = [];

/** The pcap backend: `cap` delivers one frame per callback into a borrowed buffer; a batch of one. */
export function openPcap(iface: string, o: NicOptions): NicLink {
  const { Cap } = loadCap();
  const cap = new Cap();
  const rx = Buffer.alloc(65536);
  let linkType: string;
  try {
    linkType = cap.open(iface, o.filter, o.bufferSize ?? 16 * 1024 * 1024, rx);
  } catch (e) {
    failedCaps.push(cap);
    throw nicOpenError(iface, (e as Error).message, o.filter);
  }
  if (linkType !== 'ETHERNET') {
    cap.close();
    throw new VipgateError('ENIC_LINKTYPE', `${iface} is not an Ethernet interface (libpcap link type ${linkType}); attach vipgate to an Ethernet NIC`);
  }
  cap.setMinBytes?.(0);
  const batch = newBatch(rx, 1);
  let waiting = 0; // the length of the frame now in rx, 0 = none
  let batches = 0;
  let lastSendError: string | null = null;
  let closed = false;
  const sendNow = (buf: Uint8Array, len: number): boolean => {
    try {
      cap.send(buf as Buffer, len);
      return true;
    } catch (e) {
      lastSendError = (e as Error).message;
      return false;
    }
  };
  return {
    name: iface,
    io: 'pcap',
    batch,
    fd: null,
    start(turn) { cap.on('packet', (n) => { waiting = n; turn(); waiting = 0; }); },
    rx(max) {
      if (waiting === 0 || max < 1) return 0;
      batch.off[0] = 0;
      batch.len[0] = waiting;
      waiting = 0;
      batches++;
      return 1;
    },
    txRelease(n) {
      const l = batch.len[0]!;
      return n === 1 && l > 0 && !sendNow(rx, l) ? 1 : 0;
    },
    send: sendNow,
    get lastSendError() { return lastSendError; },
    // `cap` does not expose pcap_stats: libpcap's own drops are not known here.
    stats() { return { ringDrops: 0, batches, wakeups: batches, linkErrors: 0, lastLinkError: null, ringWait: [] }; },
    close() { if (!closed) { closed = true; cap.close(); } },
  };
}

// The one interface between vipgate and a live NIC. Today it is backed by `cap` (libpcap, one
// JavaScript call per packet); a batched AF_PACKET ring addon can replace it behind the same
// interface without touching src/ (STYLE.md).
//
// The receive buffer is borrowed: it holds the current frame only during the onFrame callback
// and is overwritten by the next one. The packet path rewrites it in place and sends it from
// there, so nothing per packet is allocated.

import { VipgateError } from '../src/control/errors';

export interface NicLink {
  readonly name: string;
  /** libpcap's link type name, e.g. 'ETHERNET'. */
  readonly linkType: string;
  /** The borrowed receive buffer. */
  readonly rx: Buffer;
  /** Called once per captured frame, with its length in rx. */
  onFrame(cb: (len: number) => void): void;
  /** Transmit buf[0, len). Returns false when the send failed (the caller counts it). */
  send(buf: Buffer, len: number): boolean;
  /** The last send error's text, for logs. */
  readonly lastSendError: string | null;
  close(): void;
}

export interface NicOptions {
  /** BPF filter (tcpdump syntax) admitting only what vipgate needs. */
  filter: string;
  /** Kernel ring buffer size in bytes. */
  bufferSize?: number;
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

/** Throws ENIC_NO_LIBPCAP (with the fix) unless the libpcap binding loads: `vipgate run` asks first, before touching anything. */
export function checkNicBinding(): void {
  loadCap();
}

/** Open `iface` for capture and injection. Throws VipgateError with a code that says what to fix. */
export function openNic(iface: string, o: NicOptions): NicLink {
  const { Cap } = loadCap();
  const cap = new Cap();
  const rx = Buffer.alloc(65536);
  let linkType: string;
  try {
    linkType = cap.open(iface, o.filter, o.bufferSize ?? 16 * 1024 * 1024, rx);
  } catch (e) {
    const msg = (e as Error).message;
    if (/permission|not permitted|EPERM|EACCES/i.test(msg)) {
      throw new VipgateError('ENIC_PERMISSION',
        `cannot capture on ${iface}: ${msg}. vipgate needs CAP_NET_RAW: run it as root, or with --cap-add NET_RAW in docker`);
    }
    if (/No such device|doesn't exist|SIOCGIFHWADDR/i.test(msg)) {
      throw new VipgateError('ENIC_NOT_FOUND', `cannot capture on ${iface}: ${msg}`);
    }
    if (/syntax|filter/i.test(msg)) {
      throw new VipgateError('ENIC_FILTER', `the capture filter was refused (${msg}): ${o.filter}`);
    }
    throw new VipgateError('ENIC_OPEN', `cannot open ${iface} for capture: ${msg}`);
  }
  if (linkType !== 'ETHERNET') {
    cap.close();
    throw new VipgateError('ENIC_LINKTYPE', `${iface} is not an Ethernet interface (libpcap link type ${linkType}); attach vipgate to an Ethernet NIC`);
  }
  cap.setMinBytes?.(0);
  let lastSendError: string | null = null;
  let closed = false;
  return {
    name: iface,
    linkType,
    rx,
    onFrame(cb) { cap.on('packet', (n) => cb(n)); },
    send(buf, len) {
      try {
        cap.send(buf, len);
        return true;
      } catch (e) {
        lastSendError = (e as Error).message;
        return false;
      }
    },
    get lastSendError() { return lastSendError; },
    close() { if (!closed) { closed = true; cap.close(); } },
  };
}

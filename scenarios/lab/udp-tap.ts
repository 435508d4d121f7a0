// The lab's UDP tap, for the cluster checks' forged and replayed datagrams (scenarios/lab/cluster-wire.ts):
// records whole Ethernet frames carrying UDP to a port as they arrive at an interface, and sends
// frames back onto an interface byte for byte. Through the same libpcap binding vipgate uses
// (cap), so that a replay is exactly what was on the wire (addresses, ports, IP id, payload),
// not a new datagram from some other socket.
//
//   ip netns exec NS node dist/scenarios/lab/udp-tap.js capture --iface eth0 --port 7411 --count 5 --timeout-ms 3000 [--src 10.77.0.2] [--type 1]
//     -> {"frames":["<hex>", ...]}          (up to count frames; fewer when the time ran out)
//   ip netns exec NS node dist/scenarios/lab/udp-tap.js inject --iface eth0 < '{"frames":["<hex>", ...]}'
//     -> {"sent":N}
//
// --type K keeps only datagrams whose 6th payload byte (a cluster message's type) is K.

import { parseArgs } from 'node:util';
import type { CapLike } from './arp-probe';

function usage(): never {
  process.stderr.write('usage: udp-tap.js capture --iface IF --port P --count N --timeout-ms T [--src IPV4] [--type 0..255]\n' +
    '       udp-tap.js inject --iface IF   (stdin: {"frames":["hex",...]})\n');
  process.exit(2);
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: { iface: { type: 'string' }, port: { type: 'string' }, count: { type: 'string' }, 'timeout-ms': { type: 'string' }, src: { type: 'string' }, type: { type: 'string' } },
    allowPositionals: true, strict: true,
  });
  const cmd = positionals[0];
  const iface = values.iface ?? 'eth0';
  let Cap: new () => CapLike;
  try {
    ({ Cap } = require('cap') as { Cap: new () => CapLike });
  } catch (e) {
    process.stderr.write(`udp-tap: the libpcap binding (cap) is not available: ${(e as Error).message.split('\n')[0]}\n`);
    process.exit(3);
  }
  const cap = new Cap();
  const buf = Buffer.alloc(65536);
  if (cmd === 'capture') {
    const port = Number(values.port), count = Number(values.count ?? 1), timeoutMs = Number(values['timeout-ms'] ?? 3000);
    const type = values.type === undefined ? null : Number(values.type);
    if (!(port >= 1 && port <= 65535) || !(count >= 1 && count <= 10_000) || !(timeoutMs >= 1)) usage();
    if (values.src !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(values.src)) usage();
    if (type !== null && !(Number.isInteger(type) && type >= 0 && type <= 255)) usage();
    // udp[13] is payload byte 5 (the UDP header is 8 bytes): the cluster message type.
    const filter = [`udp dst port ${port}`, values.src ? `src host ${values.src}` : '', type !== null ? `udp[13] = ${type}` : '']
      .filter(Boolean).join(' and ');
    cap.open(iface, filter, 4 << 20, buf);
    cap.setMinBytes?.(0);
    const frames: string[] = [];
    const finish = (): void => { cap.close(); process.stdout.write(JSON.stringify({ frames }) + '\n'); process.exit(0); };
    cap.on('packet', (n) => {
      frames.push(buf.subarray(0, n).toString('hex'));
      if (frames.length >= count) finish();
    });
    setTimeout(finish, timeoutMs);
    // Ready: the caller may now make traffic it wants recorded.
    process.stderr.write('capturing\n');
    return;
  }
  if (cmd === 'inject') {
    let input = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { input += d; });
    process.stdin.on('end', () => {
      const { frames } = JSON.parse(input) as { frames: string[] };
      cap.open(iface, 'ether proto 0x0800 and udp', 1 << 20, buf);
      let sent = 0;
      for (const h of frames) {
        const f = Buffer.from(h, 'hex');
        if (f.length < 14 || f.length > 1514) throw new Error(`udp-tap: a frame of ${f.length} bytes cannot be sent`);
        cap.send(f, f.length);
        sent++;
      }
      cap.close();
      process.stdout.write(JSON.stringify({ sent }) + '\n');
      process.exit(0);
    });
    return;
  }
  usage();
}

if (require.main === module) main();

// Forged and replayed cluster datagrams for the lab checks (test/cluster-lab.test.ts): real
// datagrams recorded off the wire as they arrive at a node (udp-tap.ts capture), then sent
// again byte for byte from the sender's own bridge port (so the switch learns nothing new), or
// altered first: a bit flipped, cut short, or re-signed with a wrong key as a fresh message.
// The message layout is vipgate's own (src/control/cluster/wire.ts): a 40-byte header, the body,
// the HMAC-SHA256 of everything before it as the last 32 bytes.

import * as path from 'node:path';
import type { Lab } from './lab';
import { CLUSTER_PORT } from './cluster';
import { encode, HEADER_BYTES, HMAC_BYTES, MAGIC, type Envelope, type MsgType } from '../../src/control/cluster/wire';

export { MSG_HEARTBEAT, MSG_FLOWS } from '../../src/control/cluster/wire';

const ETH = 14;
/** Offsets in a frame of the IPv4 header and the UDP payload (IHL honoured). */
function layout(frame: Buffer): { ip: number; udp: number; payload: number } {
  if (frame.length < ETH + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) throw new Error('cluster-wire: not an untagged IPv4 frame');
  const ihl = (frame[ETH]! & 0x0f) * 4;
  if (frame[ETH + 9] !== 17) throw new Error('cluster-wire: not UDP');
  return { ip: ETH, udp: ETH + ihl, payload: ETH + ihl + 8 };
}

export function payloadOf(frame: Buffer): Buffer {
  const l = layout(frame);
  const udpLen = frame.readUInt16BE(l.udp + 4);
  return frame.subarray(l.payload, l.udp + udpLen);
}

/**
 * The same frame (addresses, ports, IP id) carrying another payload: IP total length and header
 * checksum recomputed, UDP length set, UDP checksum 0 ("none", valid for IPv4) so that the
 * receiver's kernel hands an altered payload to the cluster socket instead of dropping it.
 */
export function withPayload(frame: Buffer, payload: Buffer): Buffer {
  const l = layout(frame);
  const out = Buffer.concat([frame.subarray(0, l.payload), payload]);
  out.writeUInt16BE(out.length - l.ip, l.ip + 2);
  out.writeUInt16BE(0, l.ip + 10);
  let sum = 0;
  for (let i = l.ip; i < l.udp; i += 2) sum += out.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  out.writeUInt16BE(~sum & 0xffff, l.ip + 10);
  out.writeUInt16BE(8 + payload.length, l.udp + 4);
  out.writeUInt16BE(0, l.udp + 6);
  return out;
}

/**
 * The type and envelope of a cluster message, read without the key (what an attacker on the
 * segment can read too): the header is in the clear.
 */
export function envelopeOf(msg: Buffer): { type: number; env: Envelope } {
  if (msg.length < HEADER_BYTES + HMAC_BYTES) throw new Error(`cluster-wire: ${msg.length} bytes is shorter than a cluster message`);
  if (msg.readUInt32BE(0) !== MAGIC) throw new Error('cluster-wire: no VGCL magic');
  return { type: msg[5]!, env: { sender: msg[8]!, incarnation: msg.readDoubleBE(16), seq: msg.readDoubleBE(24), sentAt: msg.readDoubleBE(32) } };
}

/** A copy with bit `bit` (counted from the first byte's top bit) flipped. */
export function flipBit(msg: Buffer, bit: number): Buffer {
  const out = Buffer.from(msg);
  out[bit >> 3] ^= 0x80 >> (bit & 7);
  return out;
}

/**
 * The message made fresh (seq moved ahead by `ahead`, sentAt now), its body unchanged, signed
 * with `key`: with the cluster's key it would be accepted; with any other it must be refused.
 * `sender` puts it in another node's name.
 */
export function resign(msg: Buffer, key: Buffer, o: { ahead?: number; now?: number; sender?: number } = {}): Buffer {
  const { type, env } = envelopeOf(msg);
  const body = msg.subarray(HEADER_BYTES, msg.length - HMAC_BYTES);
  return encode(type as MsgType, { ...env, sender: o.sender ?? env.sender, seq: env.seq + (o.ahead ?? 1000), sentAt: o.now ?? Date.now() }, body, key);
}

export interface Capture {
  /** Resolves once the tap is recording. */
  ready: Promise<void>;
  /** Resolves with the frames recorded (up to count; fewer when the time ran out). */
  frames: Promise<Buffer[]>;
}

/** Record up to `count` frames arriving at node namespace `ns` on the cluster port (from `src`, of message `type`). */
export function captureCluster(lab: Lab, ns: string, o: { count: number; timeoutMs: number; src?: string; type?: number }): Capture {
  const js = path.join(__dirname, 'udp-tap.js');
  const child = lab.spawn(ns, [process.execPath, js, 'capture', '--iface', 'eth0', '--port', String(CLUSTER_PORT), '--count', String(o.count),
    '--timeout-ms', String(o.timeoutMs), ...(o.src ? ['--src', o.src] : []), ...(o.type !== undefined ? ['--type', String(o.type)] : [])]);
  let out = '', err = '';
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((r) => { readyResolve = r; });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('capturing\n')) readyResolve(); });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const frames = new Promise<Buffer[]>((resolve, reject) => {
    child.on('close', (code) => {
      readyResolve();
      if (code !== 0) { reject(new Error(`udp tap in ${ns} exited ${code}: ${err.trim()}`)); return; }
      try { resolve((JSON.parse(out) as { frames: string[] }).frames.map((h) => Buffer.from(h, 'hex'))); } catch { reject(new Error(`udp tap in ${ns}: unreadable output ${out.slice(0, 200)}`)); }
    });
  });
  return { ready, frames };
}

/** Send frames byte for byte out of namespace ns's eth0 (the sender's own port). Returns how many went. */
export function injectFrames(lab: Lab, ns: string, frames: Buffer[]): number {
  const js = path.join(__dirname, 'udp-tap.js');
  const r = lab.exec(ns, [process.execPath, js, 'inject', '--iface', 'eth0'], { input: JSON.stringify({ frames: frames.map((f) => f.toString('hex')) }) });
  if (r.code !== 0) throw new Error(`udp tap inject in ${ns}: exit ${r.code}: ${r.stderr.trim()}`);
  return (JSON.parse(r.stdout) as { sent: number }).sent;
}

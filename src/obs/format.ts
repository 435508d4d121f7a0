// Counters as text for people: the replay summary, `vipgate run` on exit and its periodic line.

import { CounterSnapshot } from '../dataplane/counters';

export function formatCounters(s: CounterSnapshot, indent = '  '): string {
  const c = s.counters;
  const w = (n: number) => String(n).padStart(8);
  const lines = [
    `${indent}frames in    ${w(c.frames_in)}    frames out     ${w(c.frames_out)}`,
    `${indent}arp replies  ${w(c.arp_replies)}    flows created  ${w(c.flows_created)}    flows active ${c.flows_active}`,
    `${indent}forwarded    ${w(c.forwarded)}    to backends ${w(c.forwarded_to_backend)}, to clients (nat) ${c.forwarded_to_client}`,
  ];
  if (c.icmp_echo_replies || c.icmp_errors_to_backend || c.icmp_errors_to_client) {
    lines.push(`${indent}icmp echo replies ${c.icmp_echo_replies}, errors carried to backends ${c.icmp_errors_to_backend}, to clients (nat) ${c.icmp_errors_to_client}`);
  }
  if (c.garp_sent || c.arp_requests_sent || c.tx_errors) {
    lines.push(`${indent}gratuitous ARP sent ${c.garp_sent}, ARP requests sent ${c.arp_requests_sent}, send errors ${c.tx_errors}`);
  }
  if (c.rx_batches || c.rx_ring_drops || c.link_errors) {
    // Live I/O: how frames arrived (mean batch, wake-ups) and what never reached the packet path.
    const mean = c.rx_batches ? (c.frames_in / c.rx_batches).toFixed(1) : '0';
    lines.push(`${indent}batches ${c.rx_batches} (mean ${mean} frames), wake-ups ${c.rx_wakeups}, ring drops ${c.rx_ring_drops}, link errors ${c.link_errors}`);
  }
  const nz = Object.entries(s.drops).filter(([, n]) => n > 0).sort((x, y) => y[1] - x[1]);
  const total = nz.reduce((a, [, n]) => a + n, 0);
  lines.push(`${indent}dropped      ${w(total)}${nz.length ? ':' : ''}`);
  for (const [k, n] of nz) lines.push(`${indent}  ${k.padEnd(22)}${w(n)}`);
  return lines.join('\n');
}

/** One line for a periodic status print. */
export function formatRateLine(prev: CounterSnapshot, cur: CounterSnapshot, seconds: number): string {
  const r = (k: 'frames_in' | 'frames_out' | 'flows_created') => ((cur.counters[k] - prev.counters[k]) / seconds).toFixed(0);
  let dropped = 0;
  for (const k of Object.keys(cur.drops) as Array<keyof CounterSnapshot['drops']>) dropped += cur.drops[k] - prev.drops[k];
  return `in ${r('frames_in')}/s out ${r('frames_out')}/s new flows ${r('flows_created')}/s drops ${(dropped / seconds).toFixed(0)}/s, flows active ${cur.counters.flows_active}`;
}

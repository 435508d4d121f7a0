// The live link: frames from a NIC through the packet path and back out of the same NIC.
// One callback per frame (that is how `cap` delivers them); the receive buffer is borrowed,
// rewritten in place and sent from where it lies. Send failures are counted, never thrown.

import type { NicLink } from '../../native-bindings/nic';
import { Dataplane, VERDICT_TX, VERDICT_HOLD } from '../dataplane/dataplane';
import { Drop, Ctr } from '../dataplane/counters';
import { T_NOW } from '../dataplane/state';

/**
 * onHold: called after a frame the packet path held (the SYN-time check); the callee schedules
 * control's drain of the hold queue once per event-loop turn, however many SYNs were held.
 */
export function attachLive(nic: NicLink, dp: Dataplane, onHold?: () => void): void {
  const rx = nic.rx;
  const c = dp.state.counters;
  const times = dp.state.times;
  nic.onFrame((len) => {
    let verdict: number;
    try {
      // The clock goes straight into the state's Float64Array: no boxed double per packet.
      times[T_NOW] = Date.now();
      verdict = dp.step(rx, 0, len);
    } catch {
      c[Drop.internal_error]!++; // the one catch at the link boundary: a bug, counted
      return;
    }
    if (verdict === VERDICT_TX) { if (!nic.send(rx, dp.txLen)) c[Ctr.tx_errors]!++; }
    else if (verdict === VERDICT_HOLD) onHold?.();
  });
}

/**
 * The capture filter: ARP, and IPv4 sent to our MAC (VIP traffic, and in nat mode the backends'
 * replies) except what is for this host's own addresses; never our own frames. It names no VIP,
 * so VIPs and backends added at runtime need no new filter.
 */
export function captureFilter(mac: string, hostAddrs: string[]): string {
  const notHost = hostAddrs.map((h) => ` and not dst host ${h}`).join('');
  return `not ether src ${mac} and (arp or (ip and ether dst ${mac}${notHost}))`;
}

// `npm start`'s live view (issue 12 item 8): every line fits 80 columns, with the longest names
// the lab makes; current figures ("now", per second) and cumulative ones ("total", since start)
// sit in labelled columns; it says where vipgate's API is and how to point the CLI at it.

import t from 'tap';
import { render, VIEW_WIDTH, type ClientStats, type Status } from '../scenarios/start.js';
import type { Lab } from '../scenarios/lab/lab.js';
import { COUNTER_SLOTS, Ctr, Drop, snapshotCounters } from '../src/dataplane/counters.js';
import type { BackendView } from '../src/control/api-types.js';

// The longest prefix the lab makes: vg + 8 hex digits of PID + x + 4 hex.
const prefix = 'vgffffffffxffff';
const lab = {
  prefix, mode: 'nat', ns: { vipgate: `${prefix}-vg` },
  addr: { vipgate: '10.77.0.2', vips: ['10.77.0.100', '10.77.0.101'], gateway: '10.77.1.1' },
  mac: { vipgate: '02:77:00:00:00:02' }, backendNames: ['web1', 'web2', 'web3'], httpPort: 80,
} as unknown as Lab;

function status(time: number, scale: number): Status {
  const c = new Float64Array(COUNTER_SLOTS);
  c[Ctr.frames_in] = 123456789 * scale;
  c[Ctr.frames_out] = 123456000 * scale;
  c[Ctr.flows_created] = 9_999_999 * scale;
  c[Ctr.arp_replies] = 50 * scale;
  c[Ctr.garp_sent] = 6;
  c[Ctr.forwarded_to_client] = 60_000_000 * scale;
  c[Drop.unknown_flow] = 1000 * scale;
  c[Drop.backend_unresolved] = 3;
  const backends = ['web1', 'web2', 'web3'].map((name, i): BackendView => ({
    name, ip: `10.77.1.2${i + 1}`, mac: `02:77:01:00:00:2${i + 1}`, macSource: 'arp', state: 'drain', weight: 100, source: 'config',
    serves: [], flows: 262144, connections: 99_999_999, lease: null, leaving: false,
    health: { state: 'down', check: 'http :80/healthz', since: null, lastCheck: null, lastLatencyMs: 100, lastFailure: 'timeout after 100 ms', lastFailureAt: null },
  }));
  return { ...snapshotCounters(c), time, mode: 'nat', interface: 'eth0', vips: lab.addr.vips, backends };
}

t.test('the live view fits 80 columns and labels now and total', async (t) => {
  const clients = new Map<string, ClientStats>([
    ['c1 -> 10.77.0.100', { ok: 123_456_789, failed: 12345, byBody: { web1: 123_456_789 }, connectMs: [0.5, 1.25, 100.5], errors: { ECONNRESET: 3 } }],
    ['c2 -> 10.77.0.101', { ok: 5, failed: 0, byBody: { web2: 5 }, connectMs: [], errors: {} }],
  ]);
  const vg = { pid: 4194304, apiAddr: '127.0.0.1:9180' };
  const first = render(lab, vg, status(1000, 1), null, clients, Date.now() - 3_600_000);
  const second = render(lab, vg, status(2000, 2), status(1000, 1), clients, Date.now() - 3_600_000);
  for (const [name, view] of [['first', first], ['second', second]] as const) {
    for (const l of view.split('\n')) t.ok(l.length <= VIEW_WIDTH, `${name} frame, fits: ${JSON.stringify(l)} (${l.length})`);
  }
  t.match(second, /^ +NOW \/S +TOTAL SINCE START$/m, 'the counter columns are labelled');
  t.match(second, /^packets in +123456789 +246913578$/m, 'now = the difference over the last second; total = the counter');
  t.match(first, /^packets in +- +123456789$/m, 'no rate from one sample');
  t.match(second, /^drops +1000 +2003$/m);
  t.match(second, /^drops now \/s \(total\): backend_unresolved 0 \(3\), unknown_flow 1000 \(2000\)$/m);
  t.match(second, /^BACKEND +ADDRESS +STATE +MAC \(SOURCE\) +FLOWS NOW +ANSWERED TOTAL$/m);
  t.match(second, /^CLIENT +OK TOTAL +FAILED TOTAL +CONNECT MS P50\/P99 NOW$/m);
  t.match(second, `API      127.0.0.1:9180 inside ${prefix}-vg; from another shell (as root):`, 'where the API is');
  t.match(second, `ip netns exec ${prefix}-vg ./bin/vipgate.js top`, 'and how to point the CLI at it');
});

t.test('every drop reason at once still fits: the list wraps', async (t) => {
  const a = status(1000, 1);
  const b = status(2000, 2);
  for (const k of Object.keys(b.drops) as Array<keyof typeof b.drops>) { a.drops[k] = 1_000_000; b.drops[k] = 2_000_000; }
  const view = render(lab, { pid: 1, apiAddr: '127.0.0.1:9180' }, b, a, new Map(), Date.now());
  const lines = view.split('\n');
  for (const l of lines) t.ok(l.length <= VIEW_WIDTH, `fits: ${JSON.stringify(l)}`);
  const at = lines.findIndex((l) => l.startsWith('drops now /s (total):'));
  t.ok(lines[at + 1]!.startsWith('  '), 'continued on indented lines');
  t.notMatch(view, /…/, 'nothing cut');
  for (const k of Object.keys(b.drops)) t.match(view, `${k} 1000000 (2000000)`, `${k} shown`);
});

// The SYN-time check and on_backend_down, live in the namespace lab (issue 8), dsr and nat,
// against real kernels and real HTTP servers:
//   a. `vipgate run` with syn_check (health checks an hour apart): the first connection is held
//      while vipgate probes the backend with a raw SYN, then served by it; after max_age, with that backend's server
//      SIGKILLed, a client connecting right after is served by the next member within the probe
//      timeout (no 1 s SYN retransmit, no failure); a silent backend (a black hole) costs a client
//      one probe timeout, not a retransmit; with the server back, it is used again.
//   b. on_backend_down reset: a client holding a connection to a backend that went silent gets
//      an RST at its next segment once the health checker has marked the backend DOWN.
// Needs root and network namespaces; skipped with the reason otherwise.
import t from 'tap';
import { createLab, httpLoad } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, labConfigYaml, holdConnections, type VipgateProc } from '../scenarios/lab/vipgate';
import { killServer, restartServer, setBackendSilent, routeVipgateHostToBackends } from '../scenarios/lab/failover';
import type { StatusView, BackendView } from '../src/control/api-types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Short, so the test waits it out between phases; the probe timeout generous for a loaded 2-core machine. */
const MAX_AGE_MS = 300;
const PROBE_TIMEOUT_MS = 150;
/** A connect this slow means a SYN was lost and retransmitted (Linux's initial RTO is 1 s). */
const RETRANSMIT_MS = 1000;

function counters(vg: VipgateProc): StatusView['counters'] {
  const r = vg.api('GET', '/v1/status');
  return (r.json as StatusView).counters;
}

const can = canRunVipgateLab();
if (!can.ok) {
  t.plan(0, `skipped: the SYN-time lab needs root, network namespaces and libpcap (${can.why})`);
} else {
  for (const mode of ['dsr', 'nat'] as const) {
    t.test(`${mode}: a SYN for a backend that just died is moved to the next member within the probe timeout`, async (t) => {
      const lab = await createLab({ mode, clients: 1, backends: 3, log: (s) => t.comment(s) });
      let vg: VipgateProc | null = null;
      try {
        routeVipgateHostToBackends(lab);
        // Health-checked backends (the SYN check holds only for those), at an interval far longer
        // than the test: what vouches for a backend here is the SYN-time probe alone. Failed
        // probes count as failed checks; fall 10 keeps this test's few from marking web2 DOWN
        // (then only a periodic check, an hour away, could bring it back for the last phase).
        vg = await startVipgate(lab, labConfigYaml(lab, [
          `health: { type: tcp, port: ${lab.httpPort}, interval: 3600s, timeout: ${PROBE_TIMEOUT_MS}ms, rise: 2, fall: 10 }`,
          `syn_check: { enabled: true, max_age: ${MAX_AGE_MS}ms, timeout: ${PROBE_TIMEOUT_MS}ms, on_fail: next }`,
        ].join('\n')));
        t.match(vg.log(), /SYN-time check: .*raw SYN probes/, 'raw SYN probes (not the connect fallback)');
        const url = lab.vipUrls[1]!; // port mode: active web2, standby web3 then web1
        const c1 = lab.ns.clients[0]!;

        const warm = await httpLoad(lab, c1, url, 10, { concurrency: 2, timeoutMs: 3000 });
        t.same({ ok: warm.ok, byBody: warm.byBody }, { ok: 10, byBody: { web2: 10 } }, 'web2 serves; its first SYN was held and probed');
        let c = counters(vg);
        t.ok(c.syn_held >= 1 && c.syn_check_forwarded >= 1, `held ${c.syn_held}, forwarded after the probe ${c.syn_check_forwarded}`);
        t.equal(c.flows_created, 10, 'every connection made one flow');

        // web2's server dies; its host still answers (RST for a closed port). Nothing has vouched
        // for web2 for longer than max_age and its flows have ended: the next SYN is held.
        await sleep(MAX_AGE_MS + 200);
        killServer(lab, 1);
        const first = await httpLoad(lab, c1, url, 1, { timeoutMs: 5000 });
        t.same({ ok: first.ok, byBody: first.byBody }, { ok: 1, byBody: { web3: 1 } }, 'the client right after the kill is served by web3');
        t.ok(first.latenciesMs[0]! < RETRANSMIT_MS, `connected in ${first.latenciesMs[0]!.toFixed(1)} ms: no SYN retransmit`);
        const more = await httpLoad(lab, c1, url, 40, { concurrency: 4, timeoutMs: 5000 });
        t.same({ ok: more.ok, failed: more.failed, byBody: more.byBody }, { ok: 40, failed: 0, byBody: { web3: 40 } }, 'every later client too, none refused');
        t.ok(Math.max(...more.latenciesMs) < RETRANSMIT_MS, `slowest connect ${Math.max(...more.latenciesMs).toFixed(1)} ms`);
        c = counters(vg);
        t.ok(c.syn_check_moved >= 1, `moved: ${c.syn_check_moved}`);
        t.equal(c.syn_check_resets, 0, 'no RST: a usable member existed');

        // web2 goes silent (drops everything): its probe times out; a client waits one probe timeout, not a retransmit.
        await restartServer(lab, 1);
        await sleep(MAX_AGE_MS + 200);
        setBackendSilent(lab, 1, true);
        const silent = await httpLoad(lab, c1, url, 1, { timeoutMs: 5000 });
        t.same({ ok: silent.ok, byBody: silent.byBody }, { ok: 1, byBody: { web3: 1 } }, 'web2 silent: served by web3');
        t.ok(silent.latenciesMs[0]! < RETRANSMIT_MS, `connected in ${silent.latenciesMs[0]!.toFixed(1)} ms (probe timeout ${PROBE_TIMEOUT_MS} ms)`);

        // Back: after max_age the next SYN probes web2 again, which answers now.
        setBackendSilent(lab, 1, false);
        await sleep(MAX_AGE_MS + 200);
        const back = await httpLoad(lab, c1, url, 4, { concurrency: 1, timeoutMs: 5000 });
        t.same({ ok: back.ok, byBody: back.byBody }, { ok: 4, byBody: { web2: 4 } }, 'web2 back: it serves again');
        await sleep(1100); // the aggregate events go out once a second
        const ev = vg.logRecords().filter((r) => r.event === 'syn_check');
        t.ok(ev.some((r) => r.backend === 'web2' && Number(r.probes_failed) > 0 && typeof r.last_failure === 'string'),
          'the verdicts were reported as syn_check events', { events: ev.slice(0, 6) });
        const stopped = await vg.stop();
        t.equal(stopped.code, 0, 'vipgate exits cleanly');
        const d = stopped.status!.drops;
        t.equal(d.internal_error, 0);
      } finally {
        await vg?.stop();
        lab.teardown();
      }
    });

    t.test(`${mode}: on_backend_down reset: a held connection to a backend marked DOWN gets an RST at its next segment`, async (t) => {
      const lab = await createLab({ mode, clients: 1, backends: 3, log: (s) => t.comment(s) });
      let vg: VipgateProc | null = null;
      try {
        routeVipgateHostToBackends(lab);
        // The health checker marks web2 DOWN within interval x fall + timeout of its going silent.
        vg = await startVipgate(lab, labConfigYaml(lab, `health: { type: tcp, port: ${lab.httpPort}, interval: 200ms, timeout: 50ms, rise: 2, fall: 2 }`));
        const health = (name: string) => vg!.cliJson<{ backends: BackendView[] }>(['backends']).backends.find((b) => b.name === name)!.health.state;
        await waitFor('web2 checked up', () => health('web2') === 'up');
        const held = await holdConnections(lab, lab.ns.clients[0]!, lab.addr.vips[1]!, lab.httpPort, 2);
        t.same(await held.request(), ['web2', 'web2'], 'two connections to web2, keep-alive');
        setBackendSilent(lab, 1, true); // a black hole: the case on_backend_down is for
        await waitFor('web2 marked down', () => health('web2') === 'down');
        const t0 = Date.now();
        const res = await held.request();
        const ms = Date.now() - t0;
        t.ok(res.every((r) => /^ERR (ECONNRESET|closed)/.test(r)), `each connection is reset (${res.join(', ')})`);
        t.ok(ms < 2000, `at once (${ms} ms), not after a timeout`);
        t.ok(counters(vg).backend_down_resets >= 2, `counted: backend_down_resets ${counters(vg).backend_down_resets}`);
        held.kill();
        const fresh = await httpLoad(lab, lab.ns.clients[0]!, lab.vipUrls[1]!, 5, { timeoutMs: 3000 });
        t.same(fresh.byBody, { web3: 5 }, 'new connections: web3');
      } finally {
        await vg?.stop();
        lab.teardown();
      }
    });
  }
}

async function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let v: T | null | undefined | false = null;
    try { v = fn(); } catch { /* not yet */ }
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

// How long one API change holds the thread the packet path runs on: controller.setBackend
// (validate, compose, build tables, write + fsync + rename the state file, publish), with the
// state file in a temporary directory (so on the disk behind os.tmpdir()). Prints p50/p99/max.
//
//   npm run build && node dist/bench/control.bench.js [--n 300]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/control/config';
import { buildDataplane } from '../src/app/replay';
import { Controller } from '../src/control/controller';

const n = Number(process.argv[process.argv.indexOf('--n') + 1]) || 300;
const config = loadConfig(path.join(__dirname, '..', '..', 'scenarios', 'configs', 'replay-dsr.yaml'));
const built = buildDataplane(config);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-bench-'));
try {
  const c = new Controller({ config, port: built.port, mac: config.mac!, stateFile: path.join(dir, 'state.json') });
  const ms = (run: () => void): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) { const t0 = process.hrtime.bigint(); run(); out.push(Number(process.hrtime.bigint() - t0) / 1e6); }
    return out.sort((a, b) => a - b);
  };
  const report = (what: string, xs: number[]) =>
    console.log(`${what}: p50 ${xs[Math.floor(n / 2)]!.toFixed(2)} ms, p99 ${xs[Math.floor(n * 0.99)]!.toFixed(2)} ms, max ${xs[n - 1]!.toFixed(2)} ms (n=${n})`);
  let i = 0;
  report('change (PATCH weight) with the state file', ms(() => c.setBackend('web1', { weight: 1 + (i++ % 999) })));
  report('read (GET backends)', ms(() => c.backends()));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

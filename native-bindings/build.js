#!/usr/bin/env node
'use strict';
// Builds the native addons with the machine's C compiler against the running Node's own headers:
// no downloads, no node-gyp. Run by `npm install` (prepare) and `npm run build:native`.
//   afpacket.c: AF_PACKET packet I/O (links libpcap for the capture filter). Without it vipgate
//     runs on the pcap backend and says why at start.
//   shm.c: the shared-memory region the packet worker and the supervisor map (issue 9). Without
//     it flows live in one process's heap and do not survive a restart; shmAvailable() says why.
// A failed build is not fatal: the reason is kept in native-bindings/build/<name>.error.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const out = path.join(here, 'build');
fs.mkdirSync(out, { recursive: true });

const ADDONS = [
  { name: 'afpacket', libs: ['-lpcap'], without: 'vipgate will use the pcap backend', platformWhy: 'AF_PACKET is Linux only' },
  { name: 'shm', libs: [], without: 'flow state will not survive a restart (no shared-memory region)', platformWhy: 'the shared-memory region is Linux only' },
];

function build(a) {
  const target = path.join(out, `${a.name}.node`);
  const errFile = path.join(out, `${a.name}.error`);
  const fail = (why) => {
    fs.writeFileSync(errFile, why + '\n');
    try { fs.unlinkSync(target); } catch { /* not there */ }
    process.stderr.write(`native-bindings: the ${a.name} addon was not built (${why}); ${a.without}\n`);
  };
  if (process.platform !== 'linux') return fail(`${a.platformWhy} (this is ${process.platform})`);
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    process.config && process.config.variables && process.config.variables.node_prefix
      ? path.join(process.config.variables.node_prefix, 'include', 'node') : '',
    '/usr/include/node', '/usr/local/include/node',
  ].filter(Boolean);
  const inc = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')) && fs.existsSync(path.join(d, 'uv.h')));
  if (!inc) return fail(`Node's C headers (node_api.h, uv.h) are not installed in any of ${candidates.join(', ')}: install the nodejs package that ships them`);
  const cc = process.env.CC || 'cc';
  const args = ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-fvisibility=hidden', '-I', inc,
    '-o', target + '.tmp', path.join(here, `${a.name}.c`), ...a.libs];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error) return fail(`cannot run the C compiler "${cc}": ${r.error.message}; apt-get install -y gcc (or set CC)`);
  if (r.status !== 0) {
    const text = (r.stderr || '').trim().split('\n').slice(0, 8).join('\n');
    return fail(`${cc} failed: ${text}${/pcap/.test(text) ? '\n(libpcap headers missing? apt-get install -y libpcap-dev)' : ''}`);
  }
  fs.renameSync(target + '.tmp', target);
  try { fs.unlinkSync(errFile); } catch { /* none */ }
}

for (const a of ADDONS) build(a);

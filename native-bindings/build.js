#!/usr/bin/env node
'use strict';
// Builds the AF_PACKET addon (native-bindings/afpacket.c) with the machine's C compiler against
// the running Node's own headers and libpcap (for the capture filter): no downloads, no
// node-gyp. Run by `npm install` (prepare) and `npm run build:native`. A failed build is not
// fatal: vipgate then runs on the pcap backend and says why at start (the reason is kept in
// native-bindings/build/afpacket.error).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const out = path.join(here, 'build');
const target = path.join(out, 'afpacket.node');
const errFile = path.join(out, 'afpacket.error');
fs.mkdirSync(out, { recursive: true });

function fail(why) {
  fs.writeFileSync(errFile, why + '\n');
  try { fs.unlinkSync(target); } catch { /* not there */ }
  process.stderr.write(`native-bindings: the AF_PACKET addon was not built (${why}); vipgate will use the pcap backend\n`);
  process.exit(0);
}

if (process.platform !== 'linux') fail(`AF_PACKET is Linux only (this is ${process.platform})`);
const candidates = [
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  process.config && process.config.variables && process.config.variables.node_prefix
    ? path.join(process.config.variables.node_prefix, 'include', 'node') : '',
  '/usr/include/node', '/usr/local/include/node',
].filter(Boolean);
const inc = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')) && fs.existsSync(path.join(d, 'uv.h')));
if (!inc) fail(`Node's C headers (node_api.h, uv.h) are not installed in any of ${candidates.join(', ')}: install the nodejs package that ships them`);
const cc = process.env.CC || 'cc';
const args = ['-O2', '-Wall', '-Wextra', '-shared', '-fPIC', '-fvisibility=hidden', '-I', inc,
  '-o', target + '.tmp', path.join(here, 'afpacket.c'), '-lpcap'];
const r = spawnSync(cc, args, { encoding: 'utf8' });
if (r.error) fail(`cannot run the C compiler "${cc}": ${r.error.message}; apt-get install -y gcc (or set CC)`);
if (r.status !== 0) {
  const text = (r.stderr || '').trim().split('\n').slice(0, 8).join('\n');
  fail(`${cc} failed: ${text}${/pcap/.test(text) ? '\n(libpcap headers missing? apt-get install -y libpcap-dev)' : ''}`);
}
fs.renameSync(target + '.tmp', target);
try { fs.unlinkSync(errFile); } catch { /* none */ }

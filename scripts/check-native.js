#!/usr/bin/env node
'use strict';
// Run by `npm install` (postinstall): says loudly when a native addon did not build. npm builds
// cap and raw-socket as optional dependencies, and when an optional dependency fails to build
// (no compiler, no libpcap headers) npm drops it without a word at the default log level; vipgate
// would then only fail later, at `vipgate run`. This names what is missing, what it breaks, and
// the fix. It never fails the install: replay, check-config and the API commands work without
// the addons. `vipgate run` repeats the message if cap is still missing.

const ADDONS = [
  {
    name: 'cap',
    what: 'libpcap binding: vipgate run (capture and send on the NIC), npm start\'s live lab, the live tests',
    fix: 'apt-get install -y libpcap-dev g++ make python3 && npm install',
  },
  {
    name: 'raw-socket',
    what: 'raw IP sockets: the raw SYN probes of syn health checks and the SYN-time check (without it they fall back to TCP connects)',
    fix: 'apt-get install -y g++ make python3 && npm install',
  },
];

const missing = [];
for (const a of ADDONS) {
  try {
    require(a.name);
  } catch (e) {
    const why = String((e && e.message) || e);
    // Present but built for another Node.js (after an upgrade): rebuilding it in place is the fix.
    const stale = /NODE_MODULE_VERSION|compiled against a different Node\.js/.test(why);
    missing.push({ ...a, why: why.split('\n')[0], fix: stale ? `npm rebuild ${a.name}` : a.fix });
  }
}

if (missing.length === 0) {
  process.stdout.write(`vipgate: native addons built: ${ADDONS.map((a) => a.name).join(', ')}\n`);
} else {
  const bar = '='.repeat(78);
  const lines = [bar, `vipgate: ${missing.length} native addon${missing.length > 1 ? 's' : ''} did not build during npm install:`, ''];
  for (const m of missing) {
    lines.push(`  ${m.name} (${m.what})`, `    error: ${m.why}`, `    fix:   ${m.fix}`, '');
  }
  lines.push('(npm drops an addon that failed to build: after the fix, npm install builds it again;',
    'npm rebuild alone has nothing to build.) replay, check-config and the API commands work without them.', bar);
  process.stderr.write(lines.join('\n') + '\n');
}

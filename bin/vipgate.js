#!/usr/bin/env node
'use strict';
// Thin launcher: the command is written in TypeScript and compiled to dist/ by `npm install` (prepare).
try {
  require('../dist/src/cli/main.js').main(process.argv.slice(2));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('vipgate: not built yet; run `npm install` (or `npm run build`) in the vipgate checkout first\n');
    process.exit(1);
  }
  throw err;
}

// Per-command help (issue 12 item 3): `vipgate COMMAND --help`, `-h` and `vipgate help COMMAND`
// print that command's usage, options and an example and exit 0, for every command, from the
// same table the top-level help lists; one real process checks the exit status end to end.

import t from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from './helpers/run-cli.js';
import { COMMAND_HELP } from '../src/cli/help.js';
import { CLIENT_COMMANDS } from '../src/cli/client.js';
import { repoRoot } from './helpers/paths.js';

const bin = path.join(repoRoot, 'bin', 'vipgate.js');

const cli = (argv: string[]) => runCli(argv);

const names = Object.keys(COMMAND_HELP);

t.test('every API command has a help entry', async (t) => {
  for (const c of CLIENT_COMMANDS) t.ok(names.includes(c), `${c} has help`);
});

t.test('COMMAND --help, -h and help COMMAND: usage, options, example, exit 0', async (t) => {
  for (const name of names) {
    const forms = name === 'help' ? [['help', 'help']] : [[name, '--help'], [name, '-h'], ['help', name]];
    const outs: string[] = [];
    for (const argv of forms) {
      const r = await cli(argv);
      t.equal(r.code, 0, `vipgate ${argv.join(' ')}: exit 0`);
      t.equal(r.err, '', `vipgate ${argv.join(' ')}: nothing on stderr`);
      outs.push(r.out);
    }
    const o = outs[0]!;
    t.ok(o.startsWith(`usage: vipgate ${name}`), `${name}: starts with its usage`);
    t.match(o, /\nexamples?:\n  (npm|vipgate|sudo vipgate) /, `${name}: shows an example`);
    if (COMMAND_HELP[name as keyof typeof COMMAND_HELP].options.length) t.match(o, /\noptions:\n/, `${name}: lists its options`);
    if (COMMAND_HELP[name as keyof typeof COMMAND_HELP].api) t.match(o, /--api HOST:PORT/, `${name}: says how to reach the API`);
    t.ok(outs.every((x) => x === o), `${name}: the forms print the same`);
  }
});

t.test('the top-level help lists every command from the same table', async (t) => {
  const r = await cli(['help']);
  t.equal(r.code, 0);
  for (const [name, h] of Object.entries(COMMAND_HELP)) {
    if (name === 'help' || name === 'version') continue;
    t.ok(r.out.includes(`  ${h.usage}\n`), `lists ${name}'s usage`);
  }
  t.match(r.out, /COMMAND --help \| -h/, 'and says how to get one command in full');
});

t.test('help for something that is not a command: exit 2 with the way out', async (t) => {
  const r = await cli(['help', 'nope']);
  t.equal(r.code, 2);
  t.match(r.err, /no command "nope".*\nrun 'vipgate help' for the list/s);
  const u = await cli(['nope', '--help']);
  t.equal(u.code, 2, 'an unknown command with --help is still unknown');
  t.match(u.err, /unknown command "nope"/);
});

t.test('as a process: vipgate run --help exits 0 without needing root or a config', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'run', '--help'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0);
  t.match(r.stdout, /^usage: vipgate run --config FILE/);
});

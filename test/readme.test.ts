// The README stays true where it can be checked mechanically (issue 12 item 6): the
// prerequisites it lists are the packages CI installs on a fresh machine; its Docker section
// runs what the Dockerfile's CMD runs; every command it shows has help; the commands it lists
// are the ones vipgate takes.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { COMMAND_HELP } from '../src/cli/help.js';

const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

t.test('the prerequisites are what CI installs on a fresh machine', async (t) => {
  const m = /sudo apt-get install -y ((?:[a-z0-9.+-]+ ?)+)\n/.exec(readme);
  t.ok(m, 'the README has one apt-get line of prerequisites');
  const ci = fs.readFileSync(path.join(repoRoot, '.ci', 'run'), 'utf8');
  const c = /for p in ([^;]+); do/.exec(ci);
  t.ok(c, '.ci/run has its package list');
  t.same(m![1]!.trim().split(/\s+/).sort(), c![1]!.trim().split(/\s+/).sort(), 'the same packages');
  const table = readme.slice(readme.indexOf("| package | what needs it |"));
  for (const p of m![1]!.trim().split(/\s+/)) t.ok(table.includes(`\`${p}\``), `${p}: the README says what needs it`);
});

t.test("the Docker section runs what the Dockerfile's CMD runs", async (t) => {
  const df = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(df)![1]!) as string[];
  t.match(readme, `\`vipgate ${cmd.join(' ')}\``, `README: vipgate ${cmd.join(' ')}`);
  t.match(readme, '-v /run/vipgate:/run/vipgate', 'and shares the instance lock as the Dockerfile says');
  t.match(df, '-v /run/vipgate:/run/vipgate');
});

t.test('every command in the README has help, and every command is in the README', async (t) => {
  const block = /## Commands\n\n```\n([\s\S]*?)```/.exec(readme)![1]!;
  const shown = new Set([...block.matchAll(/^vipgate ([a-z-]+(?: \| [a-z-]+)*)/gm)].flatMap((m) => m[1]!.split(' | ')));
  for (const c of shown) t.ok(c in COMMAND_HELP, `${c} has help`);
  for (const c of Object.keys(COMMAND_HELP)) t.ok(shown.has(c) || c === 'version', `${c} is in the README's command list`);
});

// `vipgate ARGV` in this process (src/cli/main.ts run()), with stdout and stderr captured and,
// for the call, VIPGATE_API_TOKEN taken from `env` only (so the tests do not depend on the
// caller's environment). Faster than a process per call when a test makes dozens.

import { run } from '../../src/cli/main';

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const saved = process.env.VIPGATE_API_TOKEN;
  delete process.env.VIPGATE_API_TOKEN;
  Object.assign(process.env, env);
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
  try {
    return { code: await run(argv), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    delete process.env.VIPGATE_API_TOKEN;
    if (saved !== undefined) process.env.VIPGATE_API_TOKEN = saved;
  }
}

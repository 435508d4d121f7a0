// `vipgate ARGV` in this process (src/cli/main.ts run()), with stdout and stderr captured and,
// for the call, VIPGATE_API_TOKEN and VIPGATE_CLUSTER_KEY taken from `env` only (so the tests do
// not depend on the caller's environment); every variable is as it was afterwards. Faster than a
// process per call when a test makes dozens.

import { run } from '../../src/cli/main';

/** Variables a call sees only when `env` gives them. */
const FROM_ENV_ONLY = ['VIPGATE_API_TOKEN', 'VIPGATE_CLUSTER_KEY'];

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const names = [...new Set([...FROM_ENV_ONLY, ...Object.keys(env)])];
  const saved = new Map(names.map((k) => [k, process.env[k]]));
  for (const k of FROM_ENV_ONLY) delete process.env[k];
  Object.assign(process.env, env);
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
  try {
    return { code: await run(argv), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

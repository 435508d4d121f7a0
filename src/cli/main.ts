// The `vipgate` command.

import { parseArgs, ParseArgsConfig } from 'node:util';
import { runReplay, formatReplayReport } from './replay';
import { loadConfig, describeConfig, parseDuration } from '../control/config';
import { cmdRunLive } from './run';
import { VipgateError } from '../control/errors';

const VERSION: string = (() => {
  try { return (require('../../../package.json') as { version: string }).version; } catch { return 'unknown'; }
})();

const USAGE = `vipgate ${VERSION} — userspace front-end: ARP for VIPs, SYN steering, dsr and nat forwarding

usage:
  vipgate replay --config FILE --out OUT.pcap [--json] [--allow-truncated] IN.pcap
      Run the packet path over every frame of IN (pcap or pcapng, Ethernet) with the capture's
      timestamps as the clock; write every frame vipgate would transmit to OUT (classic pcap,
      always written, even when empty) and print a summary (--json: one JSON object).
  vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval 10s] [--status-file F]
      Attach to the NIC (config interface:, or --interface) and run the packet path live until
      SIGINT/SIGTERM: answer ARP for the VIPs, announce them, steer and forward TCP. Needs
      CAP_NET_RAW and CAP_NET_ADMIN (root). Installs an nftables netdev ingress rule so this
      host's kernel ignores VIP traffic; removes it at exit. Prints counters on exit;
      --status-file writes them as JSON every second and at exit.
  vipgate check-config FILE
      Validate a config file and print what it describes.
  vipgate help | --help       this text
  vipgate version | --version

exit status: 0 ok, 2 bad usage, config or input (the message says what to fix), 1 internal error.`;

/** A user's mistake: print the message, exit 2. */
class UsageError extends Error {}

function out(s: string): void { process.stdout.write(s + '\n'); }
function err(s: string): void { process.stderr.write(s + '\n'); }

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, cmd: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`vipgate ${cmd}: ${(e as Error).message.replace(/\. To specify.*$/s, '')}\nrun 'vipgate help' for usage`);
  }
}

function cmdReplay(args: string[]): number {
  const { values, positionals } = parse(args, {
    config: { type: 'string', short: 'c' },
    out: { type: 'string', short: 'o' },
    json: { type: 'boolean' },
    'allow-truncated': { type: 'boolean' },
    seed: { type: 'string' },
  }, 'replay');
  const missing = [!values.config && '--config FILE', !values.out && '--out OUT.pcap', positionals.length === 0 && 'the input capture IN.pcap'].filter(Boolean);
  if (missing.length) throw new UsageError(`vipgate replay: missing ${missing.join(', ')}\nusage: vipgate replay --config FILE --out OUT.pcap [--json] IN.pcap`);
  if (positionals.length > 1) throw new UsageError(`vipgate replay: one input capture at a time (got ${positionals.length}: ${positionals.join(' ')})`);
  let seed: number | undefined;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`vipgate replay: --seed must be an integer 0..4294967295, got "${values.seed}"`);
  }
  const report = runReplay({
    config: values.config as string, out: values.out as string, input: positionals[0]!,
    allowTruncated: values['allow-truncated'] === true, ...(seed === undefined ? {} : { seed }),
  });
  out(values.json ? JSON.stringify(report) : formatReplayReport(report));
  return 0;
}

function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: 'string', short: 'c' },
    interface: { type: 'string', short: 'i' },
    'no-kernel-filter': { type: 'boolean' },
    'stats-interval': { type: 'string' },
    'status-file': { type: 'string' },
  }, 'run');
  if (!values.config) throw new UsageError('vipgate run: missing --config FILE\nusage: vipgate run --config FILE [--interface IF]');
  if (positionals.length) throw new UsageError(`vipgate run: unexpected argument ${positionals[0]}`);
  let statsIntervalMs = 0;
  if (values['stats-interval'] !== undefined) {
    const d = parseDuration(values['stats-interval']);
    if (d === null || d < 100) throw new UsageError(`vipgate run: --stats-interval takes a duration like 10s (at least 100ms), got "${values['stats-interval']}"`);
    statsIntervalMs = d;
  }
  return cmdRunLive({
    config: values.config as string, ...(values.interface ? { iface: values.interface as string } : {}),
    kernelFilter: values['no-kernel-filter'] !== true, statsIntervalMs, log: (s) => err(s),
    ...(values['status-file'] ? { statusFile: values['status-file'] as string } : {}),
  });
}

function cmdCheckConfig(args: string[]): number {
  const { positionals } = parse(args, {}, 'check-config');
  if (positionals.length !== 1) throw new UsageError('usage: vipgate check-config FILE');
  out(describeConfig(loadConfig(positionals[0]!)));
  out('config ok');
  return 0;
}

function report(e: unknown): number {
  if (e instanceof UsageError) { err(e.message); return 2; }
  // Errors raised on purpose are VipgateErrors (ConfigError, CaptureError, ...): the message
  // already names the file and says what to do. Anything else is a bug.
  if (e instanceof VipgateError) {
    err(`vipgate: ${e.message}`);
    if (e.code === 'ECAPTURE_TRUNCATED') err('(to replay the complete frames before the cut, add --allow-truncated)');
    return 2;
  }
  err(`vipgate: internal error (a bug; please report it with the command line): ${e instanceof Error ? e.stack : String(e)}`);
  return 1;
}

export function run(argv: string[]): number | Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'run': return cmdRun(rest).catch(report);
      case 'replay': return cmdReplay(rest);
      case 'check-config': return cmdCheckConfig(rest);
      case 'version': case '--version': case '-v': out(VERSION); return 0;
      case undefined: case 'help': case '--help': case '-h': out(USAGE); return cmd === undefined ? 2 : 0;
      default: throw new UsageError(`vipgate: unknown command "${cmd}"\nrun 'vipgate help' for usage`);
    }
  } catch (e) {
    return report(e);
  }
}

export function main(argv: string[]): void {
  const r = run(argv);
  if (typeof r === 'number') process.exitCode = r;
  else void r.then((code) => { process.exitCode = code; });
}

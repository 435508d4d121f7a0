// The `vipgate` command.

import { parseArgs, ParseArgsConfig } from 'node:util';
import { runReplay, formatReplayReport } from './replay';
import { parseDuration } from '../control/config';
import { loadRunSettings, describeRunSettings } from '../control/run-config';
import { cmdRunLive } from './run';
import { VERSION } from './version';
import { LOG_LEVELS, LogLevel } from '../obs/log';
import { VipgateError } from '../control/errors';
import { parseIpv4 } from '../wire/addr';
import { isClientCommand, runClient } from './client';
import { runTop } from './top';
import { runAgent } from './agent';
import { commandHelp, isHelpTopic, topLevelHelp, wantsHelp } from './help';


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
    api: { type: 'string' },
    'state-file': { type: 'string' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    'fresh-state': { type: 'boolean' },
    takeover: { type: 'boolean' },
  }, 'run');
  if (!values.config) throw new UsageError('vipgate run: missing --config FILE\nusage: vipgate run --config FILE [--interface IF]');
  if (positionals.length) throw new UsageError(`vipgate run: unexpected argument ${positionals[0]}`);
  let statsIntervalMs = 0;
  if (values['stats-interval'] !== undefined) {
    const d = parseDuration(values['stats-interval']);
    if (d === null || d < 100) throw new UsageError(`vipgate run: --stats-interval takes a duration like 10s (at least 100ms), got "${values['stats-interval']}"`);
    statsIntervalMs = d;
  }
  const apiListen = values.api;
  if (apiListen !== undefined && !isListenAddress(apiListen)) {
    throw new UsageError(`vipgate run: --api takes the address to serve the API on as HOST:PORT, e.g. 127.0.0.1:9180, got "${apiListen}"`);
  }
  const stateFile = values['state-file'];
  if (stateFile !== undefined && stateFile.trim() === '') throw new UsageError('vipgate run: --state-file takes a file path, e.g. /var/lib/vipgate/state.json');
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new UsageError(`vipgate run: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const logFormat = values['log-format'];
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'text') {
    throw new UsageError(`vipgate run: --log-format must be json or text, got "${logFormat}"`);
  }
  return cmdRunLive({
    config: values.config as string, ...(values.interface ? { iface: values.interface as string } : {}),
    kernelFilter: values['no-kernel-filter'] !== true, statsIntervalMs, log: (s) => err(s),
    freshState: values['fresh-state'] === true, takeover: values.takeover === true, argv: args,
    ...(values['status-file'] ? { statusFile: values['status-file'] as string } : {}),
    ...(apiListen !== undefined ? { apiListen } : {}),
    ...(stateFile !== undefined ? { stateFile } : {}),
    ...(logLevel !== undefined ? { logLevel: logLevel as LogLevel } : {}),
    ...(logFormat !== undefined ? { logFormat: logFormat as 'json' | 'text' } : {}),
  });
}


/** HOST:PORT to listen on: an IPv4 address, a host name or [IPv6], and a port 1..65535. */
function isListenAddress(s: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m) return false;
  const host = m[1]!;
  if (/^[\d.]+$/.test(host) && parseIpv4(host) === null) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535;
}

function cmdCheckConfig(args: string[]): number {
  const { positionals } = parse(args, {}, 'check-config');
  if (positionals.length !== 1) throw new UsageError('usage: vipgate check-config FILE');
  // Exactly run's validation (control/run-config.ts); run adds only the live host's facts.
  out(describeRunSettings(loadRunSettings(positionals[0]!)));
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
    // `vipgate COMMAND --help|-h` and `vipgate help COMMAND`: that command's help, exit 0.
    if (cmd !== undefined && isHelpTopic(cmd) && cmd !== 'help' && wantsHelp(rest)) { out(commandHelp(cmd)); return 0; }
    if (cmd === 'help' && rest.length > 0) {
      const topic = rest[0]!;
      if (!isHelpTopic(topic) || rest.length > 1) throw new UsageError(`vipgate help: no command "${rest.join(' ')}"\nrun 'vipgate help' for the list`);
      out(commandHelp(topic));
      return 0;
    }
    switch (cmd) {
      case 'run': return cmdRun(rest).catch(report);
      case 'replay': return cmdReplay(rest);
      case 'check-config': return cmdCheckConfig(rest);
      case 'top': return runTop(rest).catch(report);
      case 'agent': return runAgent(rest).catch(report);
      case 'version': case '--version': case '-v': out(VERSION); return 0;
      case undefined: case 'help': case '--help': case '-h': out(topLevelHelp()); return cmd === undefined ? 2 : 0;
      default:
        if (isClientCommand(cmd)) return runClient(cmd, rest).catch(report);
        throw new UsageError(`vipgate: unknown command "${cmd}"\nrun 'vipgate help' for usage`);
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

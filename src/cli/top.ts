// `vipgate top`: a live view of a running vipgate over the API. Rates come from the difference
// of two consecutive /v1/status counter snapshots divided by the time between them (measured
// here, so it holds whatever the server's uptime resolution is). On a terminal the frame is
// redrawn in place; otherwise one frame is printed per interval with no escape codes (logs, tests).

import { API_ENV, type BackendView, type StatusView } from '../control/api-types';
import { formatTable, humanCount, humanRate, humanSeconds, wrapList } from './table';
import {
  ApiClient, ClientError, CliIo, CONNECT_OPTIONS, UsageError, checkDuration, checkInt, clientFrom, parseCommand,
  processIo, reportClientError, servesText, stateText, healthText,
} from './client';

export const TOP_USAGE = 'vipgate top [--interval 1s] [--count N]';

interface Sample { at: number; status: StatusView; backends: BackendView[] }

/** What changed between two samples, per second. */
export interface Rates {
  seconds: number;
  framesIn: number;
  framesOut: number;
  forwarded: number;
  newFlows: number;
  drops: number;
  /** Non-zero ones only, largest first. */
  dropsBy: Array<[string, number]>;
  /** backend name -> new connections per second. */
  conns: Map<string, number>;
}

export function computeRates(prev: Sample, cur: Sample): Rates | null {
  const seconds = (cur.at - prev.at) / 1000;
  // A restart (generation or pid change, counters going backwards) makes a difference meaningless.
  if (!(seconds > 0) || cur.status.pid !== prev.status.pid || cur.status.counters.frames_in < prev.status.counters.frames_in) return null;
  const c = cur.status.counters;
  const p = prev.status.counters;
  const per = (a: number, b: number) => Math.max(0, a - b) / seconds;
  const dropsBy: Array<[string, number]> = [];
  let drops = 0;
  for (const [k, v] of Object.entries(cur.status.drops)) {
    const r = per(v, (prev.status.drops as Record<string, number>)[k] ?? 0);
    drops += r;
    if (r > 0) dropsBy.push([k, r]);
  }
  dropsBy.sort((a, b) => b[1] - a[1]);
  const before = new Map(prev.backends.map((b) => [b.name, b.connections]));
  const conns = new Map<string, number>();
  for (const b of cur.backends) {
    const was = before.get(b.name);
    if (was !== undefined) conns.set(b.name, per(b.connections, was));
  }
  return {
    seconds, framesIn: per(c.frames_in, p.frames_in), framesOut: per(c.frames_out, p.frames_out),
    forwarded: per(c.forwarded, p.forwarded), newFlows: per(c.flows_created, p.flows_created), drops, dropsBy, conns,
  };
}

/** The view's width when stdout is not a terminal (logs, tests): a classic terminal. */
export const DEFAULT_WIDTH = 80;

/** Cut a line to `width` columns, marking the cut. */
function clip(line: string, width: number): string {
  return line.length <= width ? line : line.slice(0, Math.max(0, width - 1)) + '…';
}

/**
 * One frame. Current figures (per second, from the last two samples) and cumulative ones (since
 * vipgate started) sit in two labelled columns so they cannot be confused; every line fits
 * `width` columns (the backends' SERVES column, last, is what gets cut when it must).
 */
export function renderFrame(cur: Sample, rates: Rates | null, where: string, note: string | null = null, width = DEFAULT_WIDTH): string[] {
  const s = cur.status;
  const c = s.counters;
  const now = (v: number | undefined) => (rates && v !== undefined ? humanRate(v) : '-');
  const dropsTotal = Object.values(s.drops).reduce((a, b) => a + b, 0);
  const lines = [
    `vipgate ${s.version} pid ${s.pid}, mode ${s.mode} on ${s.interface ?? '-'}, up ${humanSeconds(s.uptimeSeconds)}, generation ${s.generation}`,
    `API ${where} (another vipgate: --api HOST:PORT, or set $${API_ENV})`,
    ...formatTable(
      ['', 'NOW /S', 'TOTAL SINCE START'],
      [
        ['frames in', now(rates?.framesIn), humanCount(c.frames_in)],
        ['frames out', now(rates?.framesOut), humanCount(c.frames_out)],
        ['forwarded', now(rates?.forwarded), humanCount(c.forwarded)],
        ['new flows', now(rates?.newFlows), humanCount(c.flows_created)],
        ['drops', now(rates?.drops), humanCount(dropsTotal)],
      ],
      { align: ['left', 'right', 'right'] },
    ).split('\n'),
  ];
  if (rates && rates.dropsBy.length) {
    const total = s.drops as Record<string, number>;
    lines.push(...wrapList('drops now /s (total):', rates.dropsBy.map(([k, v]) => `${k} ${humanRate(v)} (${humanCount(total[k] ?? 0)})`), width));
  }
  lines.push(`flows active now ${humanCount(s.flows.active)} of ${humanCount(s.flows.capacity)}; backends ${s.backends.total} (${s.backends.up} up, ${s.backends.drain} drain, ${s.backends.down} down)`);
  if (note) lines.push(note);
  lines.push('');
  // Each backend's services on lines of their own under it (one per line), so the table stays
  // narrow however many a backend serves.
  const table = formatTable(
    ['NAME', 'STATE', 'HEALTH', 'WEIGHT', 'FLOWS', 'CONNS/S', 'CONNS'],
    cur.backends.map((b) => [b.name, stateText(b), healthText(b), b.weight, humanCount(b.flows), rates ? humanRate(rates.conns.get(b.name) ?? 0) : '-', humanCount(b.connections)]),
    { align: ['left', 'left', 'left', 'right', 'right', 'right', 'right'] },
  ).split('\n');
  lines.push(table[0]!);
  cur.backends.forEach((b, i) => {
    lines.push(table[i + 1]!);
    if (b.serves.length) for (const sv of servesText(b).split(',')) lines.push(`    serves ${sv}`);
  });
  return lines.map((l) => clip(l, width));
}

const CSI = '\x1b[';
/** Cursor home; each line clears its own tail; clear from the cursor to the end of the screen. */
function paint(lines: string[]): string {
  return `${CSI}H` + lines.map((l) => l + `${CSI}K`).join('\n') + `\n${CSI}J`;
}

export interface TopTerminal {
  /** Raw keyboard input, when stdin is a terminal. */
  stdin?: NodeJS.ReadStream | undefined;
  write(s: string): void;
}

export async function runTop(args: string[], io: CliIo = processIo(), term: TopTerminal | null = null): Promise<number> {
  let client: ApiClient;
  let intervalMs: number;
  let count: number | null;
  try {
    const { values, positionals } = parseCommand('top', args, { ...CONNECT_OPTIONS, interval: { type: 'string' }, count: { type: 'string' } }, TOP_USAGE);
    if (positionals.length) throw new UsageError(`vipgate top: unexpected argument "${positionals[0]}"\nusage: ${TOP_USAGE}`);
    intervalMs = values.interval === undefined ? 1000 : checkDuration(values.interval, '--interval', 100);
    count = values.count === undefined ? null : checkInt(values.count, '--count', 1, 1_000_000);
    client = clientFrom(values, io.env);
  } catch (e) {
    return reportClientError(e, io);
  }

  const tty = io.isTTY;
  // A terminal's own width (it may be resized between frames); 80 columns otherwise.
  const width = () => (tty && !term && process.stdout.columns ? process.stdout.columns : DEFAULT_WIDTH);
  const write = term ? (s: string) => term.write(s) : (s: string) => { process.stdout.write(s); };
  // Keys are read whenever stdin is a terminal, even if stdout is piped.
  const stdin = term ? term.stdin : process.stdin.isTTY ? process.stdin : undefined;

  let wake: (() => void) | null = null;
  let quit = false;
  const onSignal = () => { quit = true; wake?.(); };
  const onKey = (d: Buffer) => {
    const k = d.toString('utf8');
    // Raw mode turns ctrl-c into a byte rather than SIGINT.
    if (k === 'q' || k === 'Q' || k === '\x03' || k === '\x04') onSignal();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (stdin) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKey);
  }
  // The alternate screen (as top(1) does): the shell's scrollback is intact afterwards.
  if (tty) write(`${CSI}?1049h${CSI}?25l${CSI}2J`);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (stdin) {
      stdin.removeListener('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (tty) write(`${CSI}?25h${CSI}?1049l`);
  };

  let prev: Sample | null = null;
  let frames = 0;
  try {
    for (;;) {
      let lines: string[];
      try {
        const [status, b] = await Promise.all([client.get<StatusView>('/status'), client.get<{ backends: BackendView[] }>('/backends')]);
        const cur: Sample = { at: io.now(), status, backends: b.backends };
        lines = renderFrame(cur, prev ? computeRates(prev, cur) : null, client.where, null, width());
        prev = cur;
      } catch (e) {
        // Before the first frame there is nothing to show: fail like any other command. After
        // it, keep the last picture and say what went wrong; vipgate may come back.
        if (!prev || !(e instanceof ClientError)) throw e;
        lines = renderFrame(prev, null, client.where, `(no update: ${e.lines[0]!.replace(/^vipgate: /, '')})`, width());
      }
      if (tty) {
        lines.push('', 'q or ctrl-c to quit');
        write(paint(lines));
      } else {
        io.out(lines.join('\n') + '\n');
      }
      frames++;
      if (quit || (count !== null && frames >= count)) break;
      await new Promise<void>((res) => {
        const timer = setTimeout(() => { wake = null; res(); }, intervalMs);
        wake = () => { clearTimeout(timer); wake = null; res(); };
      });
      if (quit) break;
    }
    return 0;
  } catch (e) {
    restore(); // first, so the message lands on the normal screen
    return reportClientError(e, io);
  } finally {
    restore();
  }
}

// `vipgate replay --config FILE --out OUT.pcap [--json] [--allow-truncated] IN.pcap`

import { loadConfig } from '../control/config';
import { VipgateError } from '../control/errors';
import { readCaptureFile } from '../pcap/reader';
import { PcapWriter } from '../pcap/writer';
import { buildDataplane } from '../app/replay';
import { replayFrames, LINKTYPE_ETHERNET } from '../link/replay';
import { snapshotCounters, DROP_REASONS, CounterSnapshot } from '../dataplane/counters';
import { formatCounters } from '../obs/format';

export interface ReplayArgs {
  config: string;
  out: string;
  input: string;
  allowTruncated: boolean;
  seed?: number;
}

export interface ReplayReport {
  input: string;
  input_format: string;
  config: string;
  mode: string;
  output: string;
  frames_in: number;
  frames_out: number;
  arp_replies: number;
  flows_created: number;
  forwarded: number;
  /** Every drop reason, zeros included, so the shape never changes. */
  drops: Record<string, number>;
  drops_total: number;
  counters: Record<string, number>;
  skipped_not_ethernet: number;
  input_truncated: string | null;
  /** The time the capture spans: its last frame's timestamp minus its first's (null when empty).
   *  Capture time, the clock the packet path ran on; not how long the replay took. */
  duration_ms: number | null;
  /** How long this replay took on this machine (wall clock, ms): read, packet path, write. */
  replay_ms: number;
}

const LINKTYPE_NAMES: Record<number, string> = { 0: 'BSD loopback', 101: 'raw IP', 113: 'Linux cooked (SLL)', 276: 'Linux cooked v2 (SLL2)', 105: 'IEEE 802.11', 127: '802.11 radiotap' };

/** Run a replay; throws VipgateError (or CaptureError/ConfigError) for the user's mistakes. */
export function runReplay(a: ReplayArgs): ReplayReport {
  const t0 = performance.now();
  const config = loadConfig(a.config);
  const capture = readCaptureFile(a.input, { allowTruncated: a.allowTruncated });
  const eth = capture.frames.filter((f) => f.linkType === LINKTYPE_ETHERNET).length;
  if (capture.frames.length > 0 && eth === 0) {
    const lt = capture.frames[0]!.linkType;
    throw new VipgateError('EREPLAY_LINKTYPE',
      `${a.input}: link type ${lt}${LINKTYPE_NAMES[lt] ? ` (${LINKTYPE_NAMES[lt]})` : ''} is not Ethernet; vipgate works on Ethernet frames: ` +
      `capture on the NIC itself (e.g. tcpdump -i eth0 -w FILE), not on "any" or a tunnel`);
  }
  const built = buildDataplane(config, a.seed === undefined ? {} : { seed: a.seed });
  const writer = new PcapWriter({ linkType: LINKTYPE_ETHERNET });
  const stats = replayFrames(capture.frames, built.dataplane, writer);
  writer.writeFile(a.out);
  const snap = snapshotCounters(built.state.counters);
  const drops: Record<string, number> = {};
  let dropsTotal = 0;
  for (const r of DROP_REASONS) { drops[r] = snap.drops[r]; dropsTotal += snap.drops[r]; }
  return {
    input: a.input,
    input_format: capture.format,
    config: a.config,
    mode: config.mode,
    output: a.out,
    frames_in: snap.counters.frames_in,
    frames_out: snap.counters.frames_out,
    arp_replies: snap.counters.arp_replies,
    flows_created: snap.counters.flows_created,
    forwarded: snap.counters.forwarded,
    drops,
    drops_total: dropsTotal,
    counters: { ...snap.counters },
    skipped_not_ethernet: stats.skippedNotEthernet,
    input_truncated: capture.truncatedAt ? capture.truncatedAt.message : null,
    duration_ms: stats.firstTsMs === null || stats.lastTsMs === null ? null : stats.lastTsMs - stats.firstTsMs,
    replay_ms: Math.round((performance.now() - t0) * 1000) / 1000,
  };
}

export function formatReplayReport(r: ReplayReport, configSummary?: string): string {
  const lines: string[] = [];
  lines.push(`vipgate replay: ${r.input} (${r.input_format}) through ${r.config} (${r.mode})`);
  if (configSummary) lines.push(configSummary.split('\n').map((l) => '  ' + l).join('\n'));
  if (r.input_truncated) lines.push(`  warning: input cut off (${r.input_truncated}); replayed the complete frames before it`);
  if (r.skipped_not_ethernet) lines.push(`  skipped ${r.skipped_not_ethernet} frames that are not Ethernet`);
  lines.push(formatCounters({ counters: r.counters as CounterSnapshot['counters'], drops: r.drops as CounterSnapshot['drops'] }));
  lines.push(`  wrote ${r.frames_out} frame${r.frames_out === 1 ? '' : 's'} to ${r.output}`);
  return lines.join('\n');
}


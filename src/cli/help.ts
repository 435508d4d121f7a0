// Every command's help, in one table: `vipgate help` lists them (usage and summary), and
// `vipgate COMMAND --help`, `vipgate COMMAND -h` and `vipgate help COMMAND` print one in full
// (usage, what it does, its options, an example). A new command needs an entry here: the
// client commands' entries are typed by CLIENT_USAGE, so one missing does not compile.

import { API_ENV, DEFAULT_API_LISTEN, TOKEN_ENV } from '../control/api-types';
import { CLIENT_USAGE, type ClientCommand } from './client';
import { TOP_USAGE } from './top';
import { AGENT_USAGE } from './agent';
import { VERSION } from './version';

export interface CommandHelp {
  usage: string;
  /** What it does, a few lines (the top-level list shows it too). */
  summary: string;
  /** [option, what it does]. */
  options: Array<[string, string]>;
  /** Command lines to copy, each with a comment. */
  examples: string[];
  /** Takes the options every API command takes (--api, --token, --timeout, --json). */
  api?: boolean;
}

const API_OPTIONS: Array<[string, string]> = [
  ['--api HOST:PORT|URL', `the running vipgate's API (else $${API_ENV}, else ${DEFAULT_API_LISTEN})`],
  ['--token T', `the API's bearer token (else $${TOKEN_ENV}); needed when the API is not on loopback`],
  ['--timeout 5s', 'how long to wait for an answer'],
];
const JSON_OPTION: [string, string] = ['--json', "print the API's own JSON instead of a table"];

type Name = 'replay' | 'run' | 'check-config' | ClientCommand | 'top' | 'agent' | 'help' | 'version';

export const COMMAND_HELP: Record<Name, CommandHelp> = {
  replay: {
    usage: 'vipgate replay --config FILE --out OUT.pcap [--json] [--allow-truncated] IN.pcap',
    summary: "Run the packet path over every frame of IN (pcap or pcapng, Ethernet) with the capture's\n" +
      'timestamps as the clock; write every frame vipgate would transmit to OUT (classic pcap,\n' +
      'always written, even when empty) and print a summary.',
    options: [
      ['--config, -c FILE', 'the vipgate config (it needs mac:, since no NIC gives one)'],
      ['--out, -o OUT.pcap', 'where the frames vipgate would send go'],
      ['--json', 'one JSON object: frames_in/out, arp_replies, flows_created, forwarded, drops by reason, counters, duration_ms (the time the capture spans, by its timestamps), replay_ms (how long the replay took)'],
      ['--allow-truncated', 'replay the complete frames of a capture cut off mid-record'],
      ['--seed N', 'hash seed of the flow tables (0..4294967295), for repeatable runs'],
    ],
    examples: [
      'npm run demo     # writes scenarios/out/demo-*-in.pcap first',
      'vipgate replay --config scenarios/configs/replay-nat.yaml --out /tmp/out.pcap scenarios/out/demo-nat-in.pcap',
    ],
  },
  run: {
    usage: 'vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval 10s] [--status-file F]\n' +
      '            [--api HOST:PORT] [--state-file F] [--log-level debug|info|warn|error] [--log-format json|text] [--fresh-state]',
    summary: 'Attach to the NIC (config interface:, or --interface) and run the packet path live until\n' +
      'SIGINT/SIGTERM: answer ARP for the VIPs, announce them, steer and forward TCP. Needs\n' +
      'CAP_NET_RAW and CAP_NET_ADMIN (root). One vipgate per NIC (a lock in /run/vipgate). Installs\n' +
      "an nftables netdev ingress table so this host's kernel ignores VIP traffic; removes it at exit.\n" +
      'The packet path runs in a worker process, restarted if it dies; flows live in a shared-memory\n' +
      'file (/dev/shm/vipgate-IF.netnsN.state) that a restart or `vipgate upgrade` takes over.\n' +
      'SIGHUP reloads the config; the runtime API serves the commands below.',
    options: [
      ['--config, -c FILE', 'the vipgate config (checked exactly as check-config checks it)'],
      ['--interface, -i IF', 'the NIC facing the clients (else the config\'s interface:)'],
      ['--no-kernel-filter', 'leave the host\'s nftables alone (then drop VIP traffic for the kernel yourself)'],
      ['--stats-interval 10s', 'log rates at this interval'],
      ['--status-file F', 'write counters, VIPs and backends as JSON every second and at exit (checked writable at start)'],
      ['--api HOST:PORT', "serve the runtime API here (else the config's api.listen, default 127.0.0.1:9180)"],
      ['--state-file F', "keep API changes across restarts (else the config's state_file)"],
      ['--log-level L', 'debug, info, warn or error (else the config\'s log.level)'],
      ['--log-format F', 'json (one object per line) or text'],
      ['--fresh-state', 'discard the shared state file (every flow in it) instead of continuing its flows'],
    ],
    examples: [
      'sudo vipgate run --config /etc/vipgate/vipgate.yaml --state-file /var/lib/vipgate/state.json',
      'sudo vipgate run --config scenarios/configs/live-dsr.yaml --interface eth1 --log-format text',
    ],
  },
  'check-config': {
    usage: 'vipgate check-config FILE',
    summary: 'Validate a config exactly as `vipgate run` does and print everything it describes: mode,\n' +
      'interface, MAC, VIPs, backends, services, nat gateway, API, state file, timeouts. A config\n' +
      'it accepts, run accepts; one it refuses, run refuses (run adds only the live checks: the\n' +
      'interface exists, the capabilities, the lock).',
    options: [],
    examples: ['vipgate check-config /etc/vipgate/vipgate.yaml'],
  },
  status: {
    usage: CLIENT_USAGE.status, api: true,
    summary: 'Version, PID, mode, interface, uptime, generation, counts, flows, frames and drops.',
    options: [JSON_OPTION], examples: ['vipgate status', 'vipgate status --api 10.0.0.5:9180 --token "$TOKEN" --json'],
  },
  backends: {
    usage: CLIENT_USAGE.backends, api: true,
    summary: 'Every backend: IP, MAC, admin state, health (the last check), weight, what it serves, in\n' +
      'which role and any pin (a switch or a standby/active it was set to), flows, connections,\n' +
      'where it comes from, lease.',
    options: [JSON_OPTION], examples: ['vipgate backends'],
  },
  services: {
    usage: CLIENT_USAGE.services, api: true,
    summary: "Each service's active (serving) and standby members, and the member pinned by a switch.",
    options: [JSON_OPTION], examples: ['vipgate services'],
  },
  vips: {
    usage: CLIENT_USAGE.vips, api: true,
    summary: 'The VIPs answered and announced, where each comes from (config or a registration), their services.',
    options: [JSON_OPTION], examples: ['vipgate vips'],
  },
  cluster: {
    usage: CLIENT_USAGE.cluster, api: true,
    summary: 'The cluster as this node sees it: the nodes in priority order (alive or dead, when last heard,\n' +
      'the silence that declares them dead, load, what they own, replication sent/received/lag), the\n' +
      'owner of every VIP and why, takeovers and split brains resolved, and the messages refused (forged,\n' +
      'replayed, clock skew, ...).',
    options: [JSON_OPTION], examples: ['vipgate cluster', 'vipgate cluster --json | jq .nodes'],
  },
  neighbours: {
    usage: CLIENT_USAGE.neighbours, api: true,
    summary: 'The IP -> MAC entries learned from ARP (backends, clients in nat), with their age.',
    options: [JSON_OPTION], examples: ['vipgate neighbours'],
  },
  flows: {
    usage: CLIENT_USAGE.flows, api: true,
    summary: 'Live flows, filtered, a page at a time.',
    options: [
      ['--vip IP, --port N', 'flows to this VIP / destination port'],
      ['--backend NAME', 'flows steered to this backend'],
      ['--client IP[:PORT]', 'flows from this client'],
      ['--state S', 'syn, established or closing'],
      ['--limit N', 'flows per page, 1..1000 (default 100)'],
      ['--cursor C | --all', 'the page after C (printed as "more: --cursor C") | follow every page'],
      JSON_OPTION,
    ],
    examples: ['vipgate flows --backend web1 --state established --all'],
  },
  register: {
    usage: CLIENT_USAGE.register, api: true,
    summary: 'Add a backend at runtime (a new VIP in --serves is answered and announced); the same\n' +
      'registration again renews its lease. Kept in the state file.',
    options: [
      ['--name N', 'backend name (1..64 of A-Z a-z 0-9 _ . -)'],
      ['--ip IP', 'its address'],
      ['--mac MAC', 'its MAC (else resolved by ARP)'],
      ['--serves VIP[:PORT]', 'a service it serves (repeat it, or a comma list)'],
      ['--priority P', '1..255 (default 100); the top priority is the active group'],
      ['--weight W', '0..1000 (default 100): share of new flows in the active group'],
      ['--lease SECONDS', 'removed (drained) unless renewed within this time'],
      JSON_OPTION,
    ],
    examples: ['vipgate register --name web3 --ip 10.0.1.23 --serves 10.0.0.102:80'],
  },
  unregister: {
    usage: CLIENT_USAGE.unregister, api: true,
    summary: 'Drain a registered backend and remove it when its last flow ends.',
    options: [['--force', 'remove it now (its flows are dropped as no_backend)'], JSON_OPTION],
    examples: ['vipgate unregister web3'],
  },
  switch: {
    usage: CLIENT_USAGE.switch, api: true,
    summary: 'Pin BACKEND as the only active member of SERVICE (VIP:PORT, or VIP for an IP-mode service)\n' +
      'until the next switch; --auto removes the pin (priority order again). Open flows keep their backend.',
    options: [['--auto', 'remove the pin'], JSON_OPTION],
    examples: ['vipgate switch 10.0.0.101:80 web2', 'vipgate switch 10.0.0.101:80 --auto'],
  },
  set: {
    usage: CLIENT_USAGE.set, api: true,
    summary: 'Change a backend. up: new flows; drain: keep flows, no new ones; down: no new flows.\n' +
      'active and standby are pins, kept in the state file across restarts: active pins it as the\n' +
      'active member of every service it serves; standby pins each service it is active in to the\n' +
      'next up member. Remove them with `vipgate switch SERVICE --auto` (`vipgate backends` shows them).',
    options: [['--state S', 'up, drain, down, active or standby'], ['--weight W', '0..1000'], JSON_OPTION],
    examples: ['vipgate set web1 --state drain', 'vipgate set web1 --state standby   # then: vipgate switch 10.0.0.101:80 --auto'],
  },
  reload: {
    usage: CLIENT_USAGE.reload, api: true,
    summary: 'Read the config file again and apply the differences (as SIGHUP does). A file with a\n' +
      'problem changes nothing; a file that changes nothing leaves the generation as it is.',
    options: [JSON_OPTION], examples: ['vipgate reload'],
  },
  upgrade: {
    usage: CLIENT_USAGE.upgrade, api: true,
    summary: 'Hand the interface over to another vipgate build with no flow lost: the running vipgate\n' +
      'starts it (its own arguments, the packet socket handed over), the new one checks the shared\n' +
      'state, the old one stops its worker and lets go, the new one takes over and forwards; the old\n' +
      'one exits. An incompatible shared-state layout is refused and the running one keeps serving.\n' +
      'Default --to: the vipgate running this command.',
    options: [['--to PATH', 'the new build: its bin/vipgate.js, its checkout, or its dist/ directory'], JSON_OPTION],
    examples: ['vipgate upgrade --to /opt/vipgate-0.2.0/bin/vipgate.js', 'vipgate upgrade   # restart into the build of this command'],
  },
  events: {
    usage: CLIENT_USAGE.events, api: true,
    summary: 'Recent events, oldest first: health up/down, failover, fail-back, switch, with their sequence\n' +
      'numbers; --follow keeps waiting for new ones (long polls) until interrupted.',
    options: [
      ['--since SEQ', 'only events after this sequence number'],
      ['--follow', 'keep printing new events as they happen'],
      ['--json', 'one JSON object per event (--follow), or the API\'s page'],
    ],
    examples: ['vipgate events --follow', 'vipgate events --since 42 --json'],
  },
  top: {
    usage: TOP_USAGE, api: true,
    summary: 'Live view: current rates (per second), cumulative totals, drops by reason, flows, backends\n' +
      'with their health, connections per second, services and pins; q or ctrl-c quits.',
    options: [['--interval 1s', 'time between frames'], ['--count N', 'stop after N frames']],
    examples: ['vipgate top', 'vipgate top --api 10.0.0.5:9180 --count 1'],
  },
  agent: {
    usage: AGENT_USAGE, api: true,
    summary: "Run beside a backend's server: register it (once --health-cmd first passes), renew the lease\n" +
      'every --renew, drain it while the health check fails, unregister it on SIGTERM/SIGINT.',
    options: [
      ['--name, --ip, --mac, --serves, --priority, --weight', 'as for vipgate register'],
      ['--lease 30', 'lease in seconds'],
      ['--renew 10s', 'renew every (default a third of the lease)'],
      ['--health-cmd CMD', 'a shell command that exits 0 when the server is healthy'],
      ['--health-interval 5s', 'between checks; 3 failures in a row drain the backend'],
      ['--log-format F, --log-level L', 'json or text; debug, info, warn or error'],
    ],
    examples: ["vipgate agent --name web3 --ip 10.0.1.23 --serves 10.0.0.102:80 --api 10.0.0.5:9180 --health-cmd 'curl -fsS http://127.0.0.1/healthz'"],
  },
  help: {
    usage: 'vipgate help [COMMAND]',
    summary: 'This list, or one command in full (also: vipgate COMMAND --help, -h).',
    options: [], examples: ['vipgate help run'],
  },
  version: {
    usage: 'vipgate version', summary: 'Print the version.', options: [], examples: ['vipgate version'],
  },
};

export function isHelpTopic(c: string): c is Name {
  return Object.prototype.hasOwnProperty.call(COMMAND_HELP, c);
}

const LOCAL: Name[] = ['replay', 'run', 'check-config'];

function indent(s: string, n: number): string {
  return s.split('\n').map((l) => ' '.repeat(n) + l).join('\n');
}

/** `vipgate help`: every command's usage and summary. */
export function topLevelHelp(): string {
  const names = Object.keys(COMMAND_HELP) as Name[];
  const api = names.filter((n) => COMMAND_HELP[n].api);
  const entry = (n: Name) => `  ${COMMAND_HELP[n].usage}\n${indent(COMMAND_HELP[n].summary, 6)}`;
  return [
    `vipgate ${VERSION} — userspace front-end: ARP for VIPs, SYN steering, dsr and nat forwarding`,
    '',
    'usage:',
    ...LOCAL.map(entry),
    '',
    `runtime API commands, against a running vipgate (--api HOST:PORT or an http:// URL, else $${API_ENV},`,
    `else ${DEFAULT_API_LISTEN}; --token T, else $${TOKEN_ENV}; --timeout 5s; --json prints the API's JSON):`,
    ...api.map(entry),
    '',
    '  vipgate help [COMMAND] | COMMAND --help | -h     one command in full: usage, options, an example',
    '  vipgate version | --version',
    '',
    'exit status: 0 ok, 2 bad usage, config or input, or a request the API refused (the message says what to',
    'fix), 1 internal error, or the API unreachable or failing.',
  ].join('\n');
}

/** One command in full. */
export function commandHelp(name: Name): string {
  const h = COMMAND_HELP[name];
  const options = h.api ? [...h.options, ...API_OPTIONS] : h.options;
  const width = Math.min(30, Math.max(0, ...options.map(([o]) => o.length)));
  const lines = [`usage: ${h.usage}`, '', h.summary];
  if (options.length) {
    lines.push('', 'options:');
    for (const [o, d] of options) lines.push(o.length > width ? `  ${o}\n  ${' '.repeat(width)}  ${d}` : `  ${o.padEnd(width)}  ${d}`);
  }
  lines.push('', h.examples.length === 1 ? 'example:' : 'examples:', ...h.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** `--help` or `-h` among a command's arguments. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

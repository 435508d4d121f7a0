// A packet path built like `vipgate replay` builds it, from YAML text, for fixture tests.
import { parseConfig } from '../../src/control/config';
import { buildDataplane, Built } from '../../src/app/replay';
import { DROP_REASONS } from '../../src/dataplane/counters';
import { configSpec } from '../../src/control/model';

export const OUR_MAC = '02:00:5e:00:00:01';
export const CLIENT_MAC = '02:aa:00:00:00:07';
export const CLIENT2_MAC = '02:aa:00:00:00:08';
export const WEB1_MAC = '02:00:00:00:01:21';
export const WEB2_MAC = '02:00:00:00:01:22';

export function configText(mode: 'dsr' | 'nat', extra = ''): string {
  return `
mac: "${OUR_MAC}"
mode: ${mode}
vips: ["10.0.0.100", "10.0.0.101", "10.0.0.102"]
backends:
  - { name: web1, ip: 10.0.1.21, mac: "${WEB1_MAC}" }
  - { name: web2, ip: 10.0.1.22, mac: "${WEB2_MAC}" }
  - { name: web3, ip: 10.0.1.23 }
services:
  - { vip: 10.0.0.100, backend: web1 }
  - { vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }
  - { vip: 10.0.0.101, port: 443, active: web2 }
  - { vip: 10.0.0.102, port: 80, active: web3 }
${extra}`;
}

export function build(mode: 'dsr' | 'nat', extra = ''): Built {
  return buildDataplane(parseConfig(configText(mode, extra), `<${mode}>`), { seed: 7 });
}

export function reasonName(i: number): string {
  return i < 0 ? 'tx' : DROP_REASONS[i] ?? `#${i}`;
}

/** The nat fixture config's tables spec, for building Tables without a state (a process attaching shared state). */
export function natSpec(): ReturnType<typeof configSpec> {
  const c = parseConfig(configText('nat'), '<nat>');
  return configSpec(c, c.mac!);
}

// The one place that wires the parts together: config -> tables + state -> packet path.

import type { Config } from './control/config';
import { Tables } from './tables/services';
import { configSpec } from './control/model';
import { createState, StateViews } from './dataplane/state';
import { Dataplane } from './dataplane/dataplane';

export interface Built {
  config: Config;
  tables: Tables;
  state: StateViews;
  dataplane: Dataplane;
}

export interface BuildOptions {
  /** Hash seed for the flow and neighbour tables (a parameter so runs are repeatable). */
  seed?: number;
  /** Put the state in a SharedArrayBuffer (for a supervisor/worker split). */
  shared?: boolean;
  /** The MAC to answer with when the config has none (live mode: the NIC's). */
  mac?: Uint8Array;
  /** Where the state memory comes from (live mode: huge pages, see hugePageAllocator). */
  alloc?: (bytes: number) => ArrayBuffer;
}

export function buildDataplane(config: Config, o: BuildOptions = {}): Built {
  const mac = config.mac ?? o.mac;
  if (!mac) throw new Error('buildDataplane: no MAC in the config and none given');
  // The same path as the controller's (control/model.ts toSpec), so replay and run agree.
  const tables = new Tables(configSpec(config, mac));
  const state = createState({
    flowCapacity: config.flows.capacity,
    neighbourCapacity: config.neighbours.capacity,
    halfOpenTimeoutMs: config.flows.halfOpenTimeoutMs,
    establishedTimeoutMs: config.flows.establishedTimeoutMs,
    closingTimeoutMs: config.flows.closingTimeoutMs,
    neighbourTtlMs: config.neighbours.ttlMs,
    seed: o.seed ?? 0x9e3779b9,
    shared: o.shared ?? false,
    ...(o.alloc ? { alloc: o.alloc } : {}),
  });
  return { config, tables, state, dataplane: new Dataplane(state, tables) };
}

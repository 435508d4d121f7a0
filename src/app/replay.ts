// The one-process composition root: config -> tables + state -> packet path, all in this
// process's memory. `vipgate replay`, the in-process tests and the benchmarks use it; `vipgate
// run` splits the same parts over a supervisor (supervisor.ts) and a packet worker (worker.ts).
// The tables come from the controller's one path (control/model.ts configSpec), so replay and run
// agree on every slot.

import type { Config } from '../control/config';
import type { ControlPort } from '../control/controller';
import { Tables } from '../tables/services';
import { configSpec } from '../control/model';
import { createState, StateViews } from '../dataplane/state';
import { Dataplane } from '../dataplane/dataplane';

export interface Built {
  config: Config;
  tables: Tables;
  state: StateViews;
  dataplane: Dataplane;
  /** The controller's view of this one-process packet path (publish = Dataplane.publish). */
  port: ControlPort;
}

export interface BuildOptions {
  /** Hash seed for the flow and neighbour tables (a parameter so runs are repeatable). */
  seed?: number;
  /** The MAC to answer with when the config has none (live mode: the NIC's). */
  mac?: Uint8Array;
  /** Where the state memory comes from (e.g. huge pages, see hugePageAllocator). */
  alloc?: (bytes: number) => ArrayBuffer;
}

export function buildDataplane(config: Config, o: BuildOptions = {}): Built {
  const mac = config.mac ?? o.mac;
  if (!mac) throw new Error('buildDataplane: no MAC in the config and none given');
  const tables = new Tables(configSpec(config, mac));
  const state = createState({
    flowCapacity: config.flows.capacity,
    neighbourCapacity: config.neighbours.capacity,
    halfOpenTimeoutMs: config.flows.halfOpenTimeoutMs,
    establishedTimeoutMs: config.flows.establishedTimeoutMs,
    closingTimeoutMs: config.flows.closingTimeoutMs,
    neighbourTtlMs: config.neighbours.ttlMs,
    seed: o.seed ?? 0x9e3779b9,
    shared: false,
    ...(o.alloc ? { alloc: o.alloc } : {}),
  });
  const dataplane = new Dataplane(state, tables);
  return { config, tables, state, dataplane, port: dataplanePort(dataplane) };
}

/** The controller's port over a Dataplane in the same process. */
export function dataplanePort(dp: Dataplane): ControlPort {
  return {
    state: dp.state, flows: dp.flows, neighbours: dp.neighbours,
    get tables() { return dp.currentTables; },
    publish: (t) => dp.publish(t),
  };
}

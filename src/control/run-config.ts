// The one validation `vipgate run` and `vipgate check-config` share (issue 12 item 4): the
// config file as run reads it (the MAC may come from the NIC), then what run derives from it and
// from its flags and environment — the API address and whether it may listen there without a
// token, the token from $VIPGATE_API_TOKEN, the state file. check-config accepts exactly what
// this accepts; run adds only facts of the live host (the interface, capabilities, the
// instance lock, writable paths).

import { loadConfig, describeConfig, Config, tokenOk, TOKEN_RULE } from './config';
import { VipgateError } from './errors';
import { checkApiExposure } from './api';
import { TOKEN_ENV } from './api-types';
import { loadClusterKey, keyInfo, ClusterKey } from './config/cluster';

export interface RunSettings {
  config: Config;
  /** HOST:PORT the API listens on (--api, else api.listen). */
  apiListen: string;
  token: string | null;
  /** Where the token comes from, for the summary (never the token itself). */
  tokenFrom: string | null;
  stateFile: string | null;
  /** The cluster key (issue 11), loaded and checked, or null without a cluster. */
  clusterKey: ClusterKey | null;
}

export interface RunOverrides {
  apiListen?: string | undefined;
  stateFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/** Throws ConfigError (every problem, located) or VipgateError (a flag or the environment). */
export function loadRunSettings(file: string, o: RunOverrides = {}): RunSettings {
  const config = loadConfig(file, { requireMac: false });
  const env = o.env ?? process.env;
  const envToken = env[TOKEN_ENV];
  if (envToken !== undefined && envToken !== '' && !tokenOk(envToken)) {
    throw new VipgateError('ERUN_TOKEN', `${TOKEN_ENV} ${TOKEN_RULE}`);
  }
  const token = envToken || config.api.token;
  const tokenFrom = envToken ? `$${TOKEN_ENV}` : config.api.token !== null ? 'api.token' : null;
  const apiListen = o.apiListen ?? config.api.listen;
  try {
    checkApiExposure(apiListen, token);
  } catch (e) {
    const where = o.apiListen !== undefined ? '--api' : `${file}: api.listen`;
    throw new VipgateError((e as VipgateError).code ?? 'EAPI_LISTEN', `${where}: ${(e as Error).message}`);
  }
  let clusterKey: ClusterKey | null = null;
  if (config.cluster) {
    try {
      clusterKey = loadClusterKey(config.cluster, env);
    } catch (e) {
      throw new VipgateError((e as VipgateError).code ?? 'ECLUSTER_KEY', `${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  return { config, apiListen, token, tokenFrom, stateFile: o.stateFile ?? config.stateFile, clusterKey };
}

export function describeRunSettings(s: RunSettings): string {
  return describeConfig(s.config, { apiListen: s.apiListen, tokenFrom: s.tokenFrom, stateFile: s.stateFile, clusterKey: s.clusterKey && keyInfo(s.clusterKey) });
}

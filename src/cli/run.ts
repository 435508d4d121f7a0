// `vipgate run --config FILE [--interface IF] [--no-kernel-filter] [--stats-interval S] [--api ADDR] [--state-file F] [--fresh-state]`
// Flags and signals only: the supervisor (src/app/supervisor.ts) does the work and starts the
// packet worker (src/app/worker.ts). SIGHUP reloads the config; SIGINT/SIGTERM stop cleanly
// (the worker drained, the kernel rule removed; the shared state file stays for the next start).

import { startSupervisor, type SupervisorArgs } from '../app/supervisor';

export type RunArgs = SupervisorArgs;

/** The CLI command: start, reload on SIGHUP, stop cleanly on SIGINT/SIGTERM, exit 0. */
export async function cmdRunLive(a: RunArgs): Promise<number> {
  const r = await startSupervisor(a);
  const onSignal = (sig: string) => { r.log.info(`${sig}: stopping`); r.stop(); };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  // SIGHUP: read the config file again and apply it as a diff; a bad file changes nothing. The
  // controller logs the outcome (reload or reload_failed) once, as for `vipgate reload`.
  const onHup = () => {
    r.log.info('SIGHUP: reloading the config', { event: 'sighup' });
    try { r.controller().reload(); } catch { /* logged by the controller; nothing changed */ }
  };
  process.on('SIGHUP', onHup);
  // A bug must not leave the nftables rule behind.
  process.once('uncaughtException', (e) => { r.abort(); r.log.error(`internal error (a bug): ${e.stack}`); process.exit(1); });
  await r.done;
  process.removeListener('SIGHUP', onHup);
  return 0;
}

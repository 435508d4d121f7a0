// The package version, read once from package.json (dist/src/cli -> the repo root).

export const VERSION: string = (() => {
  try { return (require('../../../package.json') as { version: string }).version; } catch { return 'unknown'; }
})();

// Paths for tests. Tests run compiled from dist/test/**, so paths are computed from this
// file's compiled location: dist/test/helpers -> three levels up is the repository root.
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..', '..');

/** The team's shared third-party captures (read-only); VIPGATE_SHARED_PCAPS overrides. */
export const sharedPcaps = process.env['VIPGATE_SHARED_PCAPS'] ?? path.join(repoRoot, '..', 'shared', 'pcaps');

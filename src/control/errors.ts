// The one base class for errors vipgate raises on purpose (bad config, API misuse, I/O at
// start-up). Like Node's own errors (lib/internal/errors.js), each carries a stable `code`
// that callers and tests switch on; the message is for humans and may change wording.
// Anything thrown that is not a VipgateError is a bug.

export class VipgateError extends Error {
  /** Stable machine-readable code, e.g. 'ECONFIG_INVALID'. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export function isVipgateError(e: unknown): e is VipgateError {
  return e instanceof VipgateError;
}

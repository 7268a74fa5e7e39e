/**
 * Reconnection delays: exponential backoff with full jitter, so clients cut off together (a server restart) do not
 * come back together. The server's `retry:` advice is the base; a connection that stayed up resets the sequence.
 */

/** Backoff settings, in milliseconds. */
export interface BackoffOptions {
  /** The first delay's upper bound; the server's `retry:` advice replaces it. Default 1 000. */
  readonly initial?: number;
  /** The largest delay. Default 30 000. */
  readonly maximum?: number;
  /** How long a connection must stay up for the next failure to start again from `initial`. Default 60 000. */
  readonly resetAfter?: number;
  /** The source of randomness in `[0, 1)`; for tests. */
  readonly random?: () => number;
}

/** The delays before each reconnection attempt. */
export class Backoff {
  private attempt = 0;
  private base: number;
  private readonly maximum: number;
  private readonly resetAfter: number;
  private readonly random: () => number;
  private connectedAt: number | undefined;

  constructor(options: BackoffOptions = {}) {
    this.base = options.initial ?? 1_000;
    this.maximum = options.maximum ?? 30_000;
    this.resetAfter = options.resetAfter ?? 60_000;
    this.random = options.random ?? Math.random;
  }

  /** Takes the server's `retry:` advice as the base delay. */
  advise(milliseconds: number): void {
    this.base = Math.min(Math.max(milliseconds, 0), this.maximum);
  }

  /** Notes that a connection is up. */
  connected(now = Date.now()): void {
    this.connectedAt = now;
  }

  /** The delay before the next attempt: a random point below `base · 2^attempt`, capped at `maximum`. */
  next(now = Date.now()): number {
    if (this.connectedAt !== undefined && now - this.connectedAt >= this.resetAfter) this.attempt = 0;
    this.connectedAt = undefined;
    const ceiling = Math.min(this.maximum, this.base * 2 ** Math.min(this.attempt, 16));
    this.attempt += 1;
    // Full jitter, with a floor of a tenth of the base so a reconnection never spins.
    return Math.max(this.base / 10, Math.floor(this.random() * ceiling));
  }
}

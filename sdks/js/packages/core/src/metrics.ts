/**
 * Evaluation metrics: how often each variant of each flag was served, and how often the application reported an
 * error for a context served that variant, sent in batches to `POST /api/feature-flags/metrics` so the server's
 * guard sees this application's traffic (and rolls a rollout back when the new variant's error rate climbs).
 *
 * Only answers of the stored state are counted: an override or the caller's fallback says nothing about what the
 * server serves, which is what the guard judges.
 */

/** The label a value that is no named variant is counted under (the server's `(value)`). */
export const UNNAMED_LABEL = "(value)";

/** flag → label → [evaluations, errors]. */
type Counts = Map<string, Map<string, [number, number]>>;

/** How a batch goes to the server: the HTTP status it got, or an error when none came back. */
export type MetricsTransport = (body: string) => Promise<number>;

/** Counts evaluations and errors, and sends them. */
export class MetricsRecorder {
  private counts: Counts = new Map();
  private waiting: Counts = new Map();
  private timer: ReturnType<typeof setInterval> | undefined;
  private sending: Promise<void> | undefined;
  private start = new Date();

  constructor(
    private readonly transport: MetricsTransport,
    private readonly onDropped: (status: number, batch: string) => void = () => {},
  ) {}

  /** Counts one evaluation of `flag` that served `label`. */
  evaluated(flag: string, label: string): void {
    this.cell(flag, label)[0] += 1;
  }

  /** Counts one error reported for a context `flag` served `label` to. */
  failed(flag: string, label: string): void {
    this.cell(flag, label)[1] += 1;
  }

  /** Whether anything is counted and not yet accepted by the server. */
  get pending(): boolean {
    return this.counts.size > 0 || this.waiting.size > 0;
  }

  /** Sends every `milliseconds` until {@link stop}. */
  every(milliseconds: number): void {
    this.stop();
    this.timer = setInterval(() => void this.flush(), milliseconds);
    // A Node process is not kept alive by its metrics timer.
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Stops sending on a timer. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Takes everything counted as one batch body, forgetting it: for a last send that cannot wait for an answer
   * (a browser's `sendBeacon` as the page goes away). `undefined` when there is nothing.
   */
  takeBatch(): string | undefined {
    this.merge();
    if (this.waiting.size === 0) return undefined;
    const body = this.body();
    this.waiting = new Map();
    return body;
  }

  /**
   * Sends what was counted now. A batch the server did not take for a passing reason (unreachable, 5xx, 429) stays
   * and goes with the next; one refused for good (another 4xx: the key was revoked) is dropped and reported.
   */
  flush(): Promise<void> {
    this.sending ??= this.send().finally(() => (this.sending = undefined));
    return this.sending;
  }

  private async send(): Promise<void> {
    this.merge();
    if (this.waiting.size === 0) return;
    const body = this.body();
    const sent = this.waiting;
    let status: number;
    try {
      status = await this.transport(body);
    } catch {
      return;
    }
    if (status >= 200 && status < 300) {
      if (this.waiting === sent) this.waiting = new Map();
      this.start = new Date();
    } else if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      if (this.waiting === sent) this.waiting = new Map();
      this.onDropped(status, body);
    }
  }

  private cell(flag: string, label: string): [number, number] {
    let labels = this.counts.get(flag);
    if (labels === undefined) {
      labels = new Map();
      this.counts.set(flag, labels);
    }
    let cell = labels.get(label);
    if (cell === undefined) {
      cell = [0, 0];
      labels.set(label, cell);
    }
    return cell;
  }

  /** Moves the live counts into the waiting batch. */
  private merge(): void {
    if (this.counts.size === 0) return;
    for (const [flag, labels] of this.counts) {
      let waiting = this.waiting.get(flag);
      if (waiting === undefined) {
        waiting = new Map();
        this.waiting.set(flag, waiting);
      }
      for (const [label, [evaluations, errors]] of labels) {
        const cell = waiting.get(label) ?? [0, 0];
        cell[0] += evaluations;
        cell[1] += errors;
        waiting.set(label, cell);
      }
    }
    this.counts = new Map();
  }

  /** The waiting batch in the server's format (version 1, docs/api.md). */
  private body(): string {
    const flags: Record<string, { variants: Record<string, { evaluations: number; errors: number }> }> = {};
    for (const [flag, labels] of this.waiting) {
      const variants: Record<string, { evaluations: number; errors: number }> = {};
      for (const [label, [evaluations, errors]] of labels) variants[label] = { evaluations, errors: Math.min(errors, evaluations) };
      flags[flag] = { variants };
    }
    return JSON.stringify({ flags, start: this.start.toISOString().replace(/\.\d+Z$/, "Z") });
  }
}

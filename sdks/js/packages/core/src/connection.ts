/**
 * One server-sent event stream kept open over `fetch`: it reconnects with backoff and jitter after any failure,
 * resumes with `Last-Event-ID`, and reconnects when the server has been silent for longer than its heartbeat.
 *
 * `fetch` rather than `EventSource`, in browsers too: it sends the key in a header (never in a URL that lands in
 * logs), it sets `Last-Event-ID` itself, and it lets the caller pause and resume without racing a built-in retry.
 */

import { Backoff, type BackoffOptions } from "./backoff.js";
import { type ServerSentEvent, SseParser } from "./sse.js";

/** Where a connection stands. */
export type ConnectionStatus = "connecting" | "open" | "stale" | "paused" | "closed";

/** Why a connection stopped for good: the server refused the key (401, 403) or the stream (404). */
export class StreamRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "StreamRefused";
  }
}

/** Settings of an {@link EventStreamConnection}. */
export interface EventStreamOptions {
  /** The stream's URL; a function is asked again before every attempt. */
  readonly url: string | (() => string);
  /** Request headers (the key goes in `Authorization`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The id to resume after, sent as `Last-Event-ID` on the first attempt. */
  readonly lastEventId?: string;
  /** Each event, in order. */
  readonly onEvent: (event: ServerSentEvent) => void;
  /** Each change of status, with the error that caused it when there is one. */
  readonly onStatus?: (status: ConnectionStatus, error?: Error) => void;
  /** Reconnection delays. */
  readonly backoff?: BackoffOptions;
  /** Milliseconds of silence after which the connection is taken for dead and replaced. Default 45 000 (three heartbeats). */
  readonly idleTimeout?: number;
  /** The `fetch` to use; the platform's by default. */
  readonly fetch?: typeof fetch;
}

/** A stream that stays open until {@link close}d. */
export class EventStreamConnection {
  private status: ConnectionStatus = "connecting";
  private readonly parser: SseParser;
  private readonly backoff: Backoff;
  private readonly fetcher: typeof fetch;
  private controller: AbortController | undefined;
  private wake: (() => void) | undefined;
  private paused = false;
  private closed = false;
  private running: Promise<void> | undefined;

  constructor(private readonly options: EventStreamOptions) {
    this.backoff = new Backoff(options.backoff);
    this.parser = new SseParser(options.onEvent, (milliseconds) => this.backoff.advise(milliseconds));
    this.parser.lastId = options.lastEventId;
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The current status. */
  get state(): ConnectionStatus {
    return this.status;
  }

  /** The id of the last event received (or given to resume from). */
  get lastEventId(): string | undefined {
    return this.parser.lastId;
  }

  /** Opens the stream; safe to call once. */
  start(): this {
    this.running ??= this.run();
    return this;
  }

  /** Closes the connection until {@link resume} (a hidden browser tab); the last event id is kept. */
  pause(): void {
    if (this.closed || this.paused) return;
    this.paused = true;
    this.controller?.abort();
    this.setStatus("paused");
  }

  /** Reconnects a paused stream at once. */
  resume(): void {
    if (this.closed || !this.paused) return;
    this.paused = false;
    this.setStatus("connecting");
    this.wake?.();
  }

  /** Closes the stream for good. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller?.abort();
    this.wake?.();
    this.setStatus("closed");
  }

  /** Resolves when the connection has stopped for good (closed, or refused). */
  async finished(): Promise<void> {
    await this.running;
  }

  private setStatus(status: ConnectionStatus, error?: Error): void {
    if (this.status === status && error === undefined) return;
    if (this.status === "closed") return;
    this.status = status;
    this.options.onStatus?.(status, error);
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.paused) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      let failure: Error | undefined;
      try {
        await this.connectOnce();
      } catch (error) {
        if (error instanceof StreamRefused) {
          this.setStatus("closed", error);
          this.closed = true;
          return;
        }
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (this.closed || this.paused) continue;
      this.setStatus(this.status === "connecting" ? "connecting" : "stale", failure ?? new Error("the stream ended"));
      await this.sleep(this.backoff.next());
    }
  }

  private async connectOnce(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    const headers: Record<string, string> = { accept: "text/event-stream", ...this.options.headers };
    const last = this.parser.lastId;
    if (last !== undefined) headers["last-event-id"] = last;
    const url = typeof this.options.url === "function" ? this.options.url() : this.options.url;
    const idleTimeout = this.options.idleTimeout ?? 45_000;
    let idle: ReturnType<typeof setTimeout> | undefined;
    const heard = () => {
      if (idle !== undefined) clearTimeout(idle);
      idle = setTimeout(() => controller.abort(new Error(`no event or heartbeat for ${idleTimeout} ms`)), idleTimeout);
    };
    heard();
    try {
      const response = await this.fetcher(url, { headers, signal: controller.signal, cache: "no-store" });
      if (response.status === 401 || response.status === 403 || response.status === 404) {
        const body = await response.text().catch(() => "");
        throw new StreamRefused(response.status, refusal(response.status, body));
      }
      if (!response.ok || response.body === null) {
        await response.body?.cancel().catch(() => {});
        throw new Error(`the stream answered ${response.status}`);
      }
      this.parser.reset();
      this.backoff.connected();
      this.setStatus("open");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        heard();
        this.parser.push(value);
      }
    } finally {
      if (idle !== undefined) clearTimeout(idle);
      controller.abort();
      if (this.controller === controller) this.controller = undefined;
    }
  }

  private sleep(milliseconds: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, milliseconds);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** The server's reason for refusing a stream, from its error body when it sent one. */
function refusal(status: number, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    const message = (parsed as { error?: { message?: unknown } }).error?.message;
    if (typeof message === "string") return `the server refused the stream (${status}): ${message}`;
  } catch {
    // Not JSON: the status says enough.
  }
  return status === 401
    ? "the server refused the stream (401): the key is unknown or revoked"
    : `the server refused the stream (${status})`;
}

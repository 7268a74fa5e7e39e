/**
 * A parser for server-sent events (the WHATWG `text/event-stream` format), fed text as it arrives.
 *
 * Lines end with `\n`, `\r\n` or `\r`, even split across chunks; `data:` lines are joined with `\n`; a blank line
 * dispatches the event; lines starting with `:` are comments; `id:` sets the last event id (kept across events,
 * as EventSource does, and ignored when it contains NUL); `retry:` sets the reconnection delay.
 */

/** One dispatched event. */
export interface ServerSentEvent {
  /** The event type: `message` unless the server named one with `event:`. */
  readonly event: string;
  /** The data lines joined with `\n`. */
  readonly data: string;
  /** The last event id at the time of dispatch, if the stream set one. */
  readonly id: string | undefined;
}

/** Incremental SSE parser: call {@link push} with each decoded chunk; events and retry advice come out as callbacks. */
export class SseParser {
  private buffer = "";
  private skipLeadingNewline = false;
  private event = "";
  private data: string[] = [];
  private lastEventId: string | undefined;

  constructor(
    private readonly onEvent: (event: ServerSentEvent) => void,
    private readonly onRetry: (milliseconds: number) => void = () => {},
    private readonly onComment: (text: string) => void = () => {},
  ) {}

  /** The id of the last event that set one: what `Last-Event-ID` sends on reconnecting. */
  get lastId(): string | undefined {
    return this.lastEventId;
  }

  /** Sets the id to resume from (a bootstrap or a previous connection's). */
  set lastId(id: string | undefined) {
    this.lastEventId = id;
  }

  /** Feeds a chunk of text. */
  push(chunk: string): void {
    let text = chunk;
    if (this.skipLeadingNewline && text.startsWith("\n")) text = text.slice(1);
    this.skipLeadingNewline = false;
    this.buffer += text;
    let start = 0;
    for (;;) {
      const newline = this.buffer.indexOf("\n", start);
      const carriage = this.buffer.indexOf("\r", start);
      let end: number;
      if (newline === -1 && carriage === -1) break;
      if (carriage === -1 || (newline !== -1 && newline < carriage)) end = newline;
      else end = carriage;
      const line = this.buffer.slice(start, end);
      if (this.buffer[end] === "\r") {
        if (end + 1 < this.buffer.length) start = this.buffer[end + 1] === "\n" ? end + 2 : end + 1;
        else {
          // A `\r` at the end of the chunk: a `\n` starting the next one belongs to it.
          start = end + 1;
          this.skipLeadingNewline = true;
        }
      } else start = end + 1;
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }

  /** Forgets a partly received event (the connection ended mid-event); the last event id stays. */
  reset(): void {
    this.buffer = "";
    this.skipLeadingNewline = false;
    this.event = "";
    this.data = [];
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) {
      this.onComment(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.onRetry(Number(value));
        break;
      default:
        break;
    }
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.event = "";
      return;
    }
    const event: ServerSentEvent = { event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId };
    this.event = "";
    this.data = [];
    this.onEvent(event);
  }
}

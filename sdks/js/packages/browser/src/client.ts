/**
 * The browser client: flags evaluated by the server for the context the page sends (OFREP's bulk evaluation, with
 * a client-side key that sees no rule, target list or person), kept current by the server's change notices (OFREP's
 * event stream: a notice, then a conditional re-fetch that is a bodyless 304 when nothing changed for this context).
 *
 * - Answers at once: from server-rendered data (`bootstrap`), else from the last answer kept in `localStorage`, until
 *   the first fetch lands.
 * - While the tab is hidden the stream is closed after the server's `inactivityDelaySec`, and reopened with an
 *   unconditional re-fetch when the tab is shown again.
 * - Priority: `overrides` given at build time (`FF_` variables injected by the bundler), then the developer's own
 *   overrides when enabled (`?vexil=ui.new_feature:true` or `localStorage["vexil.overrides"]`), then the server's
 *   answer, then `defaults` (the generated `featureFlagDefaults`), then the caller's fallback.
 * - Evaluations are counted per variant and sent to the server (the last ones with `sendBeacon` as the page goes away),
 *   so the guard sees browser traffic; `reportError(flag)` counts a failure against the variant this page was served.
 */

import {
  Backoff,
  type ConnectionStatus,
  details,
  type EvaluationContext,
  EventStreamConnection,
  fallback,
  type FlagDetails,
  type FlagType,
  type FlagValue,
  MetricsRecorder,
  mismatch,
  type Reason,
  typeOfValue,
  UNNAMED_LABEL,
} from "@vexil/core";

/** One flag as the server evaluated it for this page's context. */
export interface EvaluatedFlag {
  readonly key: string;
  readonly value: FlagValue;
  readonly variant?: string;
  readonly reason?: string;
  readonly errorCode?: string;
  readonly errorDetails?: string;
}

/** Server-rendered flags: an OFREP bulk answer's `flags`, or plain values by name. */
export type Bootstrap = readonly EvaluatedFlag[] | Readonly<Record<string, FlagValue>>;

/** Where the client stands. */
export type BrowserStatus = "connecting" | "ready" | "stale" | "closed";

/** Settings of a {@link VexilBrowserClient}. */
export interface VexilBrowserOptions {
  /** The Vexil server (`https://flags.example.com`). */
  readonly url: string;
  /** A client-side key (`vxc_…`, `vexil token create --client --env prod`). */
  readonly clientKey: string;
  /** What the flags are evaluated for: the user, their plan, the app version. */
  readonly context?: EvaluationContext;
  /** Flags rendered by the server into the page, to answer before the first fetch. */
  readonly bootstrap?: Bootstrap;
  /** Where the last answer is kept for the next page load; `localStorage` by default, `false` for nowhere. */
  readonly storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | false;
  /** Values fixed at build time (`FF_` variables the bundler injected), by flag name. */
  readonly overrides?: Readonly<Record<string, FlagValue>>;
  /** Let the person using the page override flags for themselves (`?vexil=flag:value,…`, kept in localStorage). Off by default. */
  readonly developerOverrides?: boolean;
  /** The registry defaults (`featureFlagDefaults` from `vexil codegen --lang ts`). */
  readonly defaults?: Readonly<Record<string, FlagValue>>;
  /** Milliseconds between metric sends (default 30 000); `false` sends none. */
  readonly metricsInterval?: number | false;
  /** Milliseconds a hidden tab keeps its stream; the server's advice (120 s) by default. */
  readonly inactivityDelay?: number;
  /** Start fetching at once (default: in a browser). `false` in server-side rendering, where only the bootstrap answers, or to call `start()` later. */
  readonly connect?: boolean;
  /** The `fetch` to use. */
  readonly fetch?: typeof fetch;
}

/** The localStorage key of the developer's own overrides (`{"ui.new_feature": true}`). */
export const DEVELOPER_OVERRIDES_KEY = "vexil.overrides";

interface Kept {
  readonly context: string;
  readonly etag: string | undefined;
  readonly flags: readonly EvaluatedFlag[];
  /** Where the change notices were, so a page whose first fetch is a 304 (nothing changed) follows them too. */
  readonly stream?: { readonly url: string; readonly inactivity: number | undefined };
}

type Listener<T> = (value: T) => void;

/** A Vexil client for one page and one context. */
export class VexilBrowserClient {
  private flags = new Map<string, EvaluatedFlag>();
  private etag: string | undefined;
  private context: EvaluationContext;
  private currentStatus: BrowserStatus = "connecting";
  private connection: EventStreamConnection | undefined;
  private streamUrl: string | undefined;
  private keptStream: Kept["stream"];
  private inactivity: number | undefined;
  private hiddenTimer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | undefined;
  private again: { flagConfigEtag?: string } | undefined;
  private readonly base: URL;
  private readonly fetcher: typeof fetch;
  private readonly storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | undefined;
  private readonly storageKey: string;
  private readonly developer: Readonly<Record<string, FlagValue>>;
  private metrics: MetricsRecorder | undefined;
  private readonly changeListeners = new Set<Listener<readonly string[]>>();
  private readonly statusListeners = new Set<Listener<BrowserStatus>>();
  private readonly cleanups: Array<() => void> = [];
  private lastError: Error | undefined;
  private version = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private started = false;
  private readonly inBrowser: boolean;
  private retries = new Backoff({ initial: 1_000, maximum: 30_000 });

  constructor(private readonly options: VexilBrowserOptions) {
    this.base = new URL(options.url.endsWith("/") ? options.url : `${options.url}/`);
    this.context = options.context ?? {};
    this.fetcher = options.fetch ?? globalThis.fetch?.bind(globalThis);
    const inBrowser = typeof window !== "undefined" && typeof document !== "undefined";
    this.storage = options.storage === false ? undefined : (options.storage ?? (inBrowser ? safeLocalStorage() : undefined));
    this.storageKey = `vexil:${this.base.origin}:${options.clientKey.slice(-8)}`;
    this.developer = options.developerOverrides === true && inBrowser ? developerOverrides(this.storage) : {};
    if (options.bootstrap !== undefined) this.replace(flagsOf(options.bootstrap), undefined, false);
    else this.restore();
    if (this.flags.size > 0) this.currentStatus = "stale";
    this.inBrowser = inBrowser;
    if (options.connect ?? inBrowser) this.start();
  }

  /**
   * Starts fetching, following the notices and sending metrics; once (later calls do nothing). The constructor calls
   * it unless `connect` is `false` (server-side rendering, or `<VexilProvider>`, which starts its client in an effect
   * so a render that is thrown away, as React's StrictMode does, opens nothing).
   */
  start(): this {
    if (this.started || this.currentStatus === "closed") return this;
    this.started = true;
    if (this.options.metricsInterval !== false) {
      const url = new URL("api/feature-flags/metrics", this.base).href;
      const authorization = `Bearer ${this.options.clientKey}`;
      this.metrics = new MetricsRecorder(async (body) => {
        const response = await this.fetcher(url, { method: "POST", headers: { authorization, "content-type": "application/json" }, body, keepalive: true });
        return response.status;
      });
      this.metrics.every(this.options.metricsInterval ?? 30_000);
    }
    if (this.inBrowser) this.watchPage();
    void this.refresh({});
    return this;
  }

  /** Where the client stands. */
  get status(): BrowserStatus {
    return this.currentStatus;
  }

  /** Why the last fetch or connection failed, while not ready. */
  get lastConnectionError(): Error | undefined {
    return this.lastError;
  }

  /** The change notices' connection: `none` before the first answer names it, then its status (`paused` while hidden). */
  get streamStatus(): ConnectionStatus | "none" {
    return this.connection?.state ?? "none";
  }

  /** A number that changes whenever any answer may have changed (for `useSyncExternalStore`). */
  get revision(): number {
    return this.version;
  }

  /** Resolves once the server's answer for this context is in; rejects after `timeout` ms, or when the key is refused. */
  ready(timeout = 10_000): Promise<void> {
    if (this.currentStatus === "ready") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`no answer from the server within ${timeout} ms (${this.lastError?.message ?? this.currentStatus})`));
      }, timeout);
      const stop = this.onStatus((status) => {
        if (status !== "ready" && status !== "closed") return;
        clearTimeout(timer);
        stop();
        if (status === "ready") resolve();
        else reject(this.lastError ?? new Error("the client is closed"));
      });
    });
  }

  /** Calls `listener` with the flags whose answer changed; returns a function that unsubscribes. */
  onChange(listener: Listener<readonly string[]>): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Calls `listener` on each change of status; returns a function that unsubscribes. */
  onStatus(listener: Listener<BrowserStatus>): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** A boolean flag's value. */
  getBoolean(flag: string, fallbackValue: boolean): boolean {
    return this.resolve(flag, "boolean", fallbackValue).value;
  }

  /** A string flag's value. */
  getString<T extends string = string>(flag: string, fallbackValue: T): T {
    return this.resolve(flag, "string", fallbackValue).value;
  }

  /** A number flag's value. */
  getNumber(flag: string, fallbackValue: number): number {
    return this.resolve(flag, "number", fallbackValue).value;
  }

  /** A JSON flag's value. */
  getJson<T extends FlagValue>(flag: string, fallbackValue: T): T {
    return this.resolve(flag, "json", fallbackValue).value;
  }

  /** A flag's value, of the fallback's type: the reader the generated `flag(reader, name)` takes. */
  get<T extends FlagValue>(flag: string, fallbackValue: T): T {
    return this.resolve(flag, typeOfValue(fallbackValue), fallbackValue).value;
  }

  /** The answer with why. */
  getDetails<T extends FlagValue>(flag: string, fallbackValue: T, type: FlagType = typeOfValue(fallbackValue)): FlagDetails<T> {
    return this.resolve(flag, type, fallbackValue);
  }

  /** Every flag the server answered, by name, with the overrides applied. */
  all(): Record<string, FlagValue> {
    const values: Record<string, FlagValue> = {};
    for (const [name, flag] of this.flags) values[name] = flag.value;
    Object.assign(values, this.developer, this.options.overrides);
    return values;
  }

  /** Evaluates for another context (the user logged in): fetches at once, unconditionally. */
  async setContext(context: EvaluationContext): Promise<void> {
    this.context = context;
    this.etag = undefined;
    await this.refresh({});
  }

  /** Counts a failure the page had with `flag` against the variant it was served. Returns whether it was counted. */
  reportError(flag: string): boolean {
    const served = this.flags.get(flag);
    if (this.metrics === undefined || served === undefined || served.errorCode !== undefined || this.overridden(flag)) return false;
    this.metrics.failed(flag, served.variant ?? UNNAMED_LABEL);
    return true;
  }

  /** Sends the counted evaluations and errors now. */
  flushMetrics(): Promise<void> {
    return this.metrics?.flush() ?? Promise.resolve();
  }

  /** Closes the stream and stops sending metrics (the last counts go with a beacon). */
  close(): void {
    this.connection?.close();
    this.metrics?.stop();
    this.beacon();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (this.hiddenTimer !== undefined) clearTimeout(this.hiddenTimer);
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.setStatus("closed");
  }

  private overridden(flag: string): boolean {
    return (this.options.overrides !== undefined && flag in this.options.overrides) || flag in this.developer;
  }

  private resolve<T extends FlagValue>(flag: string, type: FlagType, fallbackValue: T): FlagDetails<T> {
    for (const [layer, values] of [["build_override", this.options.overrides], ["developer_override", this.developer]] as const) {
      const value = values?.[flag];
      if (value !== undefined && typeOfValue(value) === type) return details(flag, value as T, "STATIC", layer);
    }
    const served = this.flags.get(flag);
    if (served !== undefined && served.errorCode === undefined) {
      if (typeOfValue(served.value) !== type && !(type === "json" && served.value !== null && typeof served.value === "object")) {
        return fallback(flag, fallbackValue, "TYPE_MISMATCH", mismatch(flag, typeOfValue(served.value), type));
      }
      this.metrics?.evaluated(flag, served.variant ?? UNNAMED_LABEL);
      return details(flag, served.value as T, (served.reason ?? "STATIC") as Reason, "stored_state", { variant: served.variant });
    }
    const registry = this.options.defaults?.[flag];
    if (registry !== undefined && typeOfValue(registry) === type) return details(flag, registry as T, "DEFAULT", "registry_default");
    if (served?.errorCode !== undefined) {
      return fallback(flag, fallbackValue, served.errorCode === "TARGETING_KEY_MISSING" ? "TARGETING_KEY_MISSING" : "GENERAL", served.errorDetails ?? served.errorCode);
    }
    if (this.currentStatus === "connecting") {
      return fallback(flag, fallbackValue, "PROVIDER_NOT_READY", "no answer from the server yet; the fallback was used");
    }
    return fallback(flag, fallbackValue, "FLAG_NOT_FOUND", `the server has no flag \`${flag}\` for this key's environment; the fallback was used`);
  }

  /** Fetches the bulk evaluation; concurrent asks share one request, and one more follows when asked during it. */
  private refresh(why: { flagConfigEtag?: string; unconditional?: boolean }): Promise<void> {
    if (this.inFlight !== undefined) {
      this.again = why.flagConfigEtag === undefined ? {} : { flagConfigEtag: why.flagConfigEtag };
      return this.inFlight;
    }
    this.inFlight = this.fetchOnce(why).finally(() => {
      this.inFlight = undefined;
      const again = this.again;
      this.again = undefined;
      if (again !== undefined) void this.refresh(again);
    });
    return this.inFlight;
  }

  private async fetchOnce(why: { flagConfigEtag?: string; unconditional?: boolean }): Promise<void> {
    const url = new URL("ofrep/v1/evaluate/flags", this.base);
    if (why.flagConfigEtag !== undefined) url.searchParams.set("flagConfigEtag", why.flagConfigEtag);
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.clientKey}`, "content-type": "application/json" };
    if (this.etag !== undefined && why.unconditional !== true) headers["if-none-match"] = this.etag;
    const context = this.context;
    let response: Response;
    try {
      response = await this.fetcher(url.href, { method: "POST", headers, body: JSON.stringify({ context }), cache: "no-store" });
    } catch (error) {
      this.failed(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (context !== this.context) return;
    if (response.status === 304) {
      if (this.connection === undefined) {
        if (this.keptStream === undefined) {
          // A 304 carries no eventStreams: ask once in full to learn where the notices are.
          this.etag = undefined;
          await this.fetchOnce({ unconditional: true });
          return;
        }
        this.inactivity = this.keptStream.inactivity;
        this.follow(this.keptStream.url);
      }
      this.setStatus("ready");
      return;
    }
    if (response.status === 401 || response.status === 403) {
      const text = await response.text().catch(() => "");
      this.lastError = new Error(`the server refused the client-side key (${response.status})${text ? `: ${text}` : ""}`);
      this.connection?.close();
      this.setStatus("closed");
      return;
    }
    if (!response.ok) {
      this.failed(new Error(`the server answered ${response.status}`));
      return;
    }
    const body = (await response.json()) as { flags?: EvaluatedFlag[]; eventStreams?: Array<{ type: string; url?: string; endpoint?: { origin?: string; requestUri: string }; inactivityDelaySec?: number }> };
    this.lastError = undefined;
    this.retries = new Backoff({ initial: 1_000, maximum: 30_000 });
    const stream = body.eventStreams?.find((entry) => entry.type === "sse");
    if (stream !== undefined) {
      const url = stream.url ?? new URL(stream.endpoint?.requestUri ?? "", stream.endpoint?.origin ?? this.base.origin).href;
      this.keptStream = { url, inactivity: stream.inactivityDelaySec };
    }
    this.replace(body.flags ?? [], response.headers.get("etag") ?? undefined, true);
    if (this.keptStream !== undefined) {
      this.inactivity = this.keptStream.inactivity;
      this.follow(this.keptStream.url);
    }
    this.setStatus("ready");
  }

  /** Opens (or keeps) the notice stream at `url`. */
  private follow(url: string): void {
    if (this.connection !== undefined && this.streamUrl === url) return;
    this.connection?.close();
    this.streamUrl = url;
    this.connection = new EventStreamConnection({
      url,
      headers: { authorization: `Bearer ${this.options.clientKey}` },
      fetch: this.fetcher,
      onEvent: (event) => {
        let data: { type?: string; etag?: string };
        try {
          data = JSON.parse(event.data) as { type?: string; etag?: string };
        } catch {
          return;
        }
        if (data.type !== "refetchEvaluation") return;
        // Every notice is followed by a conditional fetch (the one sent as the stream opens covers what changed between
        // the last fetch and now): a 304 when this context's answer is the same.
        void this.refresh(data.etag === undefined ? {} : { flagConfigEtag: data.etag });
      },
      onStatus: (status: ConnectionStatus, error?: Error) => {
        if (error !== undefined) this.lastError = error;
        if (status === "stale") this.setStatus("stale");
      },
    }).start();
  }

  private failed(error: Error): void {
    this.lastError = error;
    if (this.currentStatus === "ready") this.setStatus("stale");
    // The stream's reconnection (or the next notice) asks again; without a stream yet, retry with backoff and jitter,
    // so pages cut off together by an outage do not come back together.
    if (this.connection === undefined && this.currentStatus !== "closed" && this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.refresh({});
      }, this.retries.next());
    }
  }

  /** Replaces the served flags; tells listeners which answers changed, and keeps the answer for the next load. */
  private replace(flags: readonly EvaluatedFlag[], etag: string | undefined, keep: boolean): void {
    const next = new Map(flags.map((flag) => [flag.key, flag]));
    const changed: string[] = [];
    for (const [name, flag] of next) {
      const before = this.flags.get(name);
      if (before === undefined || JSON.stringify(before) !== JSON.stringify(flag)) changed.push(name);
    }
    for (const name of this.flags.keys()) if (!next.has(name)) changed.push(name);
    this.flags = next;
    this.etag = etag;
    if (keep && this.storage !== undefined) {
      const kept: Kept = { context: JSON.stringify(this.context), etag, flags, ...(this.keptStream === undefined ? {} : { stream: this.keptStream }) };
      try {
        this.storage.setItem(this.storageKey, JSON.stringify(kept));
      } catch {
        // Storage full or refused: the next load fetches.
      }
    }
    if (changed.length > 0) {
      this.version += 1;
      for (const listener of this.changeListeners) listener(changed);
    }
  }

  /** The last answer kept for this context, if any. */
  private restore(): void {
    const text = this.storage?.getItem(this.storageKey);
    if (text === null || text === undefined) return;
    try {
      const kept = JSON.parse(text) as Kept;
      if (kept.context === JSON.stringify(this.context)) {
        this.keptStream = kept.stream;
        this.replace(kept.flags, kept.etag, false);
      }
    } catch {
      this.storage?.removeItem(this.storageKey);
    }
  }

  private setStatus(status: BrowserStatus): void {
    if (this.currentStatus === status || this.currentStatus === "closed") return;
    this.currentStatus = status;
    this.version += 1;
    for (const listener of this.statusListeners) listener(status);
  }

  /** Closes the stream while the tab is hidden; sends the last counts as the page goes away. */
  private watchPage(): void {
    const visibility = () => {
      if (document.visibilityState === "hidden") {
        this.beacon();
        const delay = this.options.inactivityDelay ?? (this.inactivity ?? 120) * 1000;
        this.hiddenTimer = setTimeout(() => this.connection?.pause(), delay);
      } else {
        if (this.hiddenTimer !== undefined) clearTimeout(this.hiddenTimer);
        this.hiddenTimer = undefined;
        if (this.connection?.state === "paused") {
          this.connection.resume();
          void this.refresh({ unconditional: true });
        }
      }
    };
    const pagehide = () => this.beacon();
    document.addEventListener("visibilitychange", visibility);
    window.addEventListener("pagehide", pagehide);
    this.cleanups.push(() => document.removeEventListener("visibilitychange", visibility), () => window.removeEventListener("pagehide", pagehide));
  }

  /** Sends what is counted with `sendBeacon`, which outlives the page (the key goes in the URL: it is public). */
  private beacon(): void {
    const batch = this.metrics?.takeBatch();
    if (batch === undefined) return;
    const url = new URL("api/feature-flags/metrics", this.base);
    url.searchParams.set("token", this.options.clientKey);
    const sent = typeof navigator !== "undefined" && navigator.sendBeacon?.(url.href, new Blob([batch], { type: "text/plain" }));
    if (!sent) void this.fetcher(url.href, { method: "POST", body: batch, keepalive: true }).catch(() => {});
  }
}

function flagsOf(bootstrap: Bootstrap): EvaluatedFlag[] {
  if (Array.isArray(bootstrap)) return [...(bootstrap as readonly EvaluatedFlag[])];
  return Object.entries(bootstrap as Record<string, FlagValue>).map(([key, value]) => ({ key, value, reason: "STATIC" }));
}

function safeLocalStorage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
}

/**
 * The developer's own overrides: `?vexil=ui.new_feature:true,ui.theme:dark` (values read as JSON when they parse,
 * else as text; `?vexil=` clears them) is kept in localStorage, so it lasts across loads until cleared.
 */
function developerOverrides(storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | undefined): Record<string, FlagValue> {
  const query = new URLSearchParams(window.location.search).get("vexil");
  if (query !== null) {
    const values: Record<string, FlagValue> = {};
    for (const pair of query.split(",")) {
      const colon = pair.indexOf(":");
      if (colon <= 0) continue;
      const raw = pair.slice(colon + 1);
      let value: FlagValue;
      try {
        value = JSON.parse(raw) as FlagValue;
      } catch {
        value = raw;
      }
      values[pair.slice(0, colon)] = value;
    }
    if (Object.keys(values).length === 0) storage?.removeItem(DEVELOPER_OVERRIDES_KEY);
    else storage?.setItem(DEVELOPER_OVERRIDES_KEY, JSON.stringify(values));
    return values;
  }
  try {
    const kept = storage?.getItem(DEVELOPER_OVERRIDES_KEY);
    return kept ? (JSON.parse(kept) as Record<string, FlagValue>) : {};
  } catch {
    return {};
  }
}

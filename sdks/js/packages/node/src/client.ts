/**
 * The Node client: every flag of one environment, kept current by the stream (`/api/feature-flags/stream`) and
 * evaluated here for each context, behind the seed's override priority:
 *
 * 1. `FF_<FLAG_NAME>` in `process.env` (`FF_UI_NEW_FEATURE=true`);
 * 2. the same variable in `.env.local` in the working directory, read without touching `process.env`;
 * 3. the flag's stored state in the environment, evaluated for the context;
 * 4. the registry default (the server's definition, else the generated `featureFlagDefaults`);
 * 5. the caller's fallback.
 *
 * Evaluation never waits and never throws: a getter answers from what the client holds, and says why in its details.
 */

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import {
  type Change,
  type ConnectionStatus,
  details,
  type EvaluationContext,
  EventStreamConnection,
  fallback,
  type FlagDetails,
  FlagStore,
  type FlagType,
  type FlagValue,
  isFlagName,
  MetricsRecorder,
  mismatch,
  overridden,
  Overrides,
  type OverrideWarning,
  parseDotenv,
  type Snapshot,
  typeOfValue,
  UNNAMED_LABEL,
} from "@vexil/core";

/** Where the client stands. */
export type ClientStatus =
  /** Waiting for the first snapshot (answers come from overrides, defaults and fallbacks meanwhile). */
  | "connecting"
  /** Connected and current. */
  | "ready"
  /** Answering from what it last heard (a bootstrap file, or a lost connection being retried). */
  | "stale"
  /** Refused by the server (a revoked key, another environment's key), or closed. */
  | "closed";

/** What the client heard: a snapshot (every flag) or one change, and the flags whose definition or state changed. */
export interface FlagsChanged {
  readonly kind: "snapshot" | "change";
  readonly revision: number;
  readonly flags: readonly string[];
}

/** Settings of a {@link VexilClient}. */
export interface VexilClientOptions {
  /** The Vexil server, `http://localhost:7070`. */
  readonly url: string;
  /** A server-side SDK key (`vxs_…`) of the environment. */
  readonly sdkKey: string;
  /** The environment (`dev`, `staging`, `prod`). */
  readonly environment: string;
  /** The registry defaults (`featureFlagDefaults` from `vexil codegen --lang ts`), for flags the server has not sent. */
  readonly defaults?: Readonly<Record<string, FlagValue>>;
  /** The process variables to read `FF_` overrides from; `process.env` by default, `false` for none. */
  readonly env?: Readonly<Record<string, string | undefined>> | false;
  /** The `.env.local` file; `.env.local` in the working directory by default, `false` for none. */
  readonly dotenvPath?: string | false;
  /** A snapshot file to start from when the server cannot be reached (written by {@link VexilClient.saveBootstrap}). */
  readonly bootstrapFile?: string;
  /** How often evaluation counts go to the server (milliseconds, default 10 000); `false` to send none. */
  readonly metricsInterval?: number | false;
  /** Called for each override that is ignored (a value that does not parse), once. */
  readonly onWarning?: (warning: OverrideWarning) => void;
  /** The `fetch` to use. */
  readonly fetch?: typeof fetch;
  /** Reconnection delays (milliseconds). */
  readonly backoff?: { readonly initial?: number; readonly maximum?: number };
}

type Listener<T> = (value: T) => void;

/** A Vexil client for a Node service. */
export class VexilClient {
  private readonly store = new FlagStore();
  private readonly overrides: Overrides;
  private readonly defaults: Readonly<Record<string, FlagValue>>;
  private readonly connection: EventStreamConnection;
  private readonly metrics: MetricsRecorder | undefined;
  private readonly changeListeners = new Set<Listener<FlagsChanged>>();
  private readonly statusListeners = new Set<Listener<ClientStatus>>();
  private readonly readyWaiters = new Set<() => void>();
  private currentStatus: ClientStatus = "connecting";
  /** Whether a snapshot came from the server (not only a bootstrap file). */
  private heardSnapshot = false;
  private lastError: Error | undefined;
  private readonly environmentName: string;
  private readonly bootstrapFile: string | undefined;

  constructor(options: VexilClientOptions) {
    const base = new URL(options.url.endsWith("/") ? options.url : `${options.url}/`);
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new Error(`the server URL must be http:// or https://, not ${options.url}`);
    }
    if (typeof options.sdkKey !== "string" || options.sdkKey === "") {
      throw new Error("sdkKey is missing: pass the environment's SDK key (vexil token create --sdk --env ENV), for example from VEXIL_SDK_KEY");
    }
    this.environmentName = options.environment;
    this.defaults = options.defaults ?? {};
    this.bootstrapFile = options.bootstrapFile;
    const variables = options.env === false ? [] : Object.entries(options.env ?? process.env);
    const dotenvPath = options.dotenvPath === false ? undefined : (options.dotenvPath ?? join(process.cwd(), ".env.local"));
    this.overrides = new Overrides(variables, dotenvPath === undefined ? [] : readDotenv(dotenvPath), options.onWarning ?? warn);
    const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    const authorization = `Bearer ${options.sdkKey}`;
    const bootstrap = this.bootstrapFile === undefined ? undefined : readBootstrap(this.bootstrapFile);
    if (bootstrap !== undefined) {
      this.apply(() => this.store.applySnapshot(bootstrap), "snapshot");
      this.setStatus("stale");
    }
    const stream = new URL("api/feature-flags/stream", base);
    stream.searchParams.set("env", options.environment);
    this.connection = new EventStreamConnection({
      url: stream.href,
      headers: { authorization },
      // No Last-Event-ID from a bootstrap file: the first connection gets a snapshot, so `ready` means current (a resumed
      // stream sends its missed changes after the head, and nothing says when they end). Reconnections resume.
      lastEventId: undefined,
      fetch: fetcher,
      backoff: options.backoff,
      onEvent: (event) => this.onEvent(event.event, event.data),
      onStatus: (status, error) => this.onConnection(status, error),
    }).start();
    if (options.metricsInterval !== false) {
      const url = new URL("api/feature-flags/metrics", base).href;
      this.metrics = new MetricsRecorder(async (body) => {
        const response = await fetcher(url, { method: "POST", headers: { authorization, "content-type": "application/json" }, body });
        await response.body?.cancel();
        return response.status;
      });
      this.metrics.every(options.metricsInterval ?? 10_000);
    }
  }

  /** Where the client stands. */
  get status(): ClientStatus {
    return this.currentStatus;
  }

  /** Why the connection last failed, while it is not connected. */
  get lastConnectionError(): Error | undefined {
    return this.lastError;
  }

  /** The environment's revision the client holds. */
  get revision(): number | undefined {
    return this.store.revision;
  }

  /** The environment, as configured. */
  get environment(): string {
    return this.environmentName;
  }

  /** Every override ignored so far (a value that does not parse for its flag's type). */
  get overrideWarnings(): readonly OverrideWarning[] {
    return this.overrides.warnings;
  }

  /** Resolves once the client has the environment's flags from the server; rejects after `timeout` ms or when refused. */
  ready(timeout = 10_000): Promise<void> {
    if (this.currentStatus === "ready") return Promise.resolve();
    if (this.currentStatus === "closed") return Promise.reject(this.lastError ?? new Error("the client is closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters.delete(done);
        reject(new Error(`no snapshot from the server within ${timeout} ms (status ${this.currentStatus}${this.lastError ? `: ${this.lastError.message}` : ""})`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        if (this.currentStatus === "ready") resolve();
        else reject(this.lastError ?? new Error("the client is closed"));
      };
      this.readyWaiters.add(done);
    });
  }

  /** Calls `listener` after each snapshot or change that changed flags; returns a function that unsubscribes. */
  onChange(listener: Listener<FlagsChanged>): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Calls `listener` on each change of status; returns a function that unsubscribes. */
  onStatus(listener: Listener<ClientStatus>): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** A boolean flag's value for `context`. */
  getBoolean(flag: string, context: EvaluationContext, fallbackValue: boolean): boolean {
    return this.resolve(flag, "boolean", context, fallbackValue).value;
  }

  /** A string flag's value for `context`. */
  getString<T extends string = string>(flag: string, context: EvaluationContext, fallbackValue: T): T {
    return this.resolve(flag, "string", context, fallbackValue).value;
  }

  /** A number flag's value for `context`. */
  getNumber(flag: string, context: EvaluationContext, fallbackValue: number): number {
    return this.resolve(flag, "number", context, fallbackValue).value;
  }

  /** A JSON flag's value for `context`. */
  getJson<T extends FlagValue>(flag: string, context: EvaluationContext, fallbackValue: T): T {
    return this.resolve(flag, "json", context, fallbackValue).value;
  }

  /** A flag's value for `context`, of the fallback's type. */
  get<T extends FlagValue>(flag: string, context: EvaluationContext, fallbackValue: T): T {
    return this.resolve(flag, typeOfValue(fallbackValue), context, fallbackValue).value;
  }

  /** The answer with why, for a boolean flag. */
  getBooleanDetails(flag: string, context: EvaluationContext, fallbackValue: boolean): FlagDetails<boolean> {
    return this.resolve(flag, "boolean", context, fallbackValue);
  }

  /** The answer with why, for a string flag. */
  getStringDetails(flag: string, context: EvaluationContext, fallbackValue: string): FlagDetails<string> {
    return this.resolve(flag, "string", context, fallbackValue);
  }

  /** The answer with why, for a number flag. */
  getNumberDetails(flag: string, context: EvaluationContext, fallbackValue: number): FlagDetails<number> {
    return this.resolve(flag, "number", context, fallbackValue);
  }

  /** The answer with why, for a JSON flag. */
  getJsonDetails<T extends FlagValue>(flag: string, context: EvaluationContext, fallbackValue: T): FlagDetails<T> {
    return this.resolve(flag, "json", context, fallbackValue);
  }

  /** A reader for one context, for the generated `flag(reader, name)` accessor of `vexil codegen --lang ts`. */
  forContext(context: EvaluationContext): { get(flag: string, fallback: unknown): unknown } {
    return { get: (flag, fallbackValue) => this.get(flag, context, fallbackValue as FlagValue) };
  }

  /**
   * Reports that the application failed while serving `context` with `flag`: counted against the variant the
   * context is served now, so the server's guard compares the variants' error rates. Returns whether it was
   * counted (not for an unknown or overridden flag, or one without a stored state).
   */
  reportError(flag: string, context: EvaluationContext): boolean {
    const stored = this.store.get(flag);
    if (this.metrics === undefined || stored === undefined || !stored.compiled.hasState || this.overrides.mentions(flag)) return false;
    const evaluation = stored.compiled.evaluate(context);
    this.metrics.failed(flag, evaluation.variant ?? UNNAMED_LABEL);
    return true;
  }

  /** Sends the counted evaluations and errors now. */
  flushMetrics(): Promise<void> {
    return this.metrics?.flush() ?? Promise.resolve();
  }

  /** What the client holds, as a snapshot. */
  snapshot(): Snapshot | undefined {
    return this.store.snapshot();
  }

  /** Writes what the client holds to `path` (the bootstrap file by default), atomically; for starts without the server. */
  saveBootstrap(path = this.bootstrapFile): void {
    if (path === undefined) throw new Error("no bootstrap file: pass a path or set bootstrapFile");
    const snapshot = this.store.snapshot();
    if (snapshot === undefined) throw new Error("nothing to save: the client has no flags yet");
    const temporary = `${path}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(snapshot, null, 2)}\n`);
    renameSync(temporary, path);
  }

  /** Closes the stream and sends the last metrics. */
  async close(): Promise<void> {
    this.connection.close();
    this.metrics?.stop();
    await this.metrics?.flush();
  }

  private resolve<T extends FlagValue>(flag: string, type: FlagType, context: EvaluationContext, fallbackValue: T): FlagDetails<T> {
    const stored = this.store.get(flag);
    if (stored === undefined) {
      if (!isFlagName(flag)) {
        return fallback(flag, fallbackValue, "FLAG_NOT_FOUND", `environment \`${this.environmentName}\` has no flag \`${flag}\`; the fallback was used`);
      }
      const override = overridden<T>(this.overrides, flag, type, undefined);
      if (override !== undefined) return override;
      const registry = this.defaults[flag];
      if (registry !== undefined && typeOfValue(registry) === type) return details(flag, registry as T, "DEFAULT", "registry_default");
      if (this.store.revision === undefined) {
        return fallback(flag, fallbackValue, "PROVIDER_NOT_READY", `the client has no flags yet (${this.currentStatus}); the fallback was used`);
      }
      return fallback(flag, fallbackValue, "FLAG_NOT_FOUND", `environment \`${this.environmentName}\` has no flag \`${flag}\`; the fallback was used`);
    }
    const definition = stored.definition;
    if (definition.type !== type) return fallback(flag, fallbackValue, "TYPE_MISMATCH", mismatch(flag, definition.type, type));
    const override = overridden<T>(this.overrides, flag, type, definition.variants);
    if (override !== undefined) return override;
    if (!stored.compiled.hasState) return details(flag, definition.default as T, "DEFAULT", "registry_default");
    const evaluation = stored.compiled.evaluate(context);
    this.metrics?.evaluated(flag, evaluation.variant ?? UNNAMED_LABEL);
    return details(flag, evaluation.value as T, evaluation.reason, "stored_state", {
      variant: evaluation.variant,
      errorCode: evaluation.errorCode,
      errorMessage: evaluation.errorMessage,
      stateVersion: stored.compiled.version,
    });
  }

  private onEvent(name: string, data: string): void {
    try {
      if (name === "snapshot") {
        const snapshot = JSON.parse(data) as Snapshot;
        this.apply(() => this.store.applySnapshot(snapshot), "snapshot");
        this.heardSnapshot = true;
        this.setStatus("ready");
      } else if (name === "change") {
        const change = JSON.parse(data) as Change;
        this.apply(() => (this.store.applyChange(change) ? [change.flag] : []), "change");
      }
    } catch (error) {
      this.lastError = error instanceof Error ? error : new Error(String(error));
    }
  }

  private apply(update: () => string[], kind: FlagsChanged["kind"]): void {
    const flags = update();
    if (kind === "snapshot") {
      // The definitions arrived: report invalid overrides of known flags now, not at their first read.
      for (const name of this.store.names()) {
        const flag = this.store.get(name);
        if (flag !== undefined && this.overrides.mentions(name)) this.overrides.resolve(name, flag.definition.type);
      }
    }
    if (flags.length === 0) return;
    const event: FlagsChanged = { kind, revision: this.store.revision ?? 0, flags };
    for (const listener of this.changeListeners) listener(event);
  }

  private onConnection(status: ConnectionStatus, error?: Error): void {
    if (error !== undefined) this.lastError = error;
    if (status === "open") {
      // Ready once a snapshot arrived (onEvent); a stream resumed after a live one is current once its missed changes,
      // sent right after the head, are applied.
      if (this.heardSnapshot) this.setStatus("ready");
      this.lastError = undefined;
    } else if (status === "stale" || (status === "connecting" && this.store.revision !== undefined)) {
      this.setStatus("stale");
    } else if (status === "closed") {
      this.setStatus("closed");
    }
  }

  private setStatus(status: ClientStatus): void {
    if (this.currentStatus === status) return;
    this.currentStatus = status;
    for (const listener of this.statusListeners) listener(status);
    if (status === "ready" || status === "closed") {
      for (const waiter of [...this.readyWaiters]) waiter();
      this.readyWaiters.clear();
    }
  }
}

function readDotenv(path: string): Array<[string, string]> {
  try {
    return parseDotenv(readFileSync(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}

function readBootstrap(path: string): Snapshot | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the bootstrap file ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as Snapshot;
  } catch (error) {
    throw new Error(`the bootstrap file ${path} is not a snapshot: ${(error as Error).message}`);
  }
}

function warn(warning: OverrideWarning): void {
  process.emitWarning(warning.message, { code: "VEXIL_OVERRIDE" });
}

/**
 * An OpenFeature provider for `@openfeature/web-sdk` (the static-context paradigm): answers from a
 * {@link VexilBrowserClient}, re-fetches when the context changes, and emits `ConfigurationChanged` with the flags
 * whose answer changed, `Stale` when the connection is lost and `Ready` when it is back.
 */

import {
  type EvaluationContext,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
} from "@openfeature/web-sdk";
import { type FlagDetails, type FlagType, type FlagValue, followStatus } from "@vexil/core";

import { VexilBrowserClient, type VexilBrowserOptions } from "./client.js";

/** The OpenFeature web provider. */
export class VexilWebProvider implements Provider {
  readonly metadata = { name: "vexil" } as const;
  readonly runsOn = "client" as const;
  readonly events = new OpenFeatureEventEmitter();
  private client: VexilBrowserClient | undefined;

  constructor(private readonly options: Omit<VexilBrowserOptions, "context"> & { readonly readyTimeout?: number }) {}

  /** The client answering, once initialized. */
  get vexil(): VexilBrowserClient | undefined {
    return this.client;
  }

  async initialize(context?: EvaluationContext): Promise<void> {
    const client = new VexilBrowserClient({ ...this.options, context: context ?? {} });
    this.client = client;
    client.onChange((flags) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [...flags] }));
    followStatus((listener) => client.onStatus(listener), () => client.lastConnectionError, {
      stale: (message) => this.events.emit(ProviderEvents.Stale, { message }),
      ready: () => this.events.emit(ProviderEvents.Ready),
      error: (message) => this.events.emit(ProviderEvents.Error, { message }),
    });
    await client.ready(this.options.readyTimeout ?? 10_000);
  }

  async onContextChange(_old: EvaluationContext, next: EvaluationContext): Promise<void> {
    await this.client?.setContext(next);
  }

  async onClose(): Promise<void> {
    this.client?.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): ResolutionDetails<boolean> {
    return this.resolve(flagKey, defaultValue, "boolean");
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string): ResolutionDetails<string> {
    return this.resolve(flagKey, defaultValue, "string");
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number): ResolutionDetails<number> {
    return this.resolve(flagKey, defaultValue, "number");
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
    return this.resolve(flagKey, defaultValue as FlagValue, "json") as ResolutionDetails<T>;
  }

  private resolve<T extends FlagValue>(flag: string, fallbackValue: T, type: FlagType): ResolutionDetails<T> {
    if (this.client === undefined) {
      return { value: fallbackValue, reason: "ERROR", errorCode: "PROVIDER_NOT_READY" as ResolutionDetails<T>["errorCode"], errorMessage: "not initialized" };
    }
    return resolution(this.client.getDetails(flag, fallbackValue, type));
  }
}

function resolution<T extends FlagValue>(details: FlagDetails<T>): ResolutionDetails<T> {
  return {
    value: details.value,
    reason: details.reason,
    flagMetadata: { source: details.source },
    ...(details.variant === undefined ? {} : { variant: details.variant }),
    ...(details.errorCode === undefined
      ? {}
      : { errorCode: details.errorCode as ResolutionDetails<T>["errorCode"], errorMessage: details.errorMessage ?? "" }),
  };
}

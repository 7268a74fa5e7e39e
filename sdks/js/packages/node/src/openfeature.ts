/**
 * An OpenFeature provider for `@openfeature/server-sdk`, over a {@link VexilClient}: flags evaluated in the process
 * from the live stream, with the client's override priority, and provider events for every change.
 *
 * ```ts
 * await OpenFeature.setProviderAndWait(new VexilProvider({ url, sdkKey, environment: "prod" }));
 * ```
 */

import {
  type ErrorCode,
  type EvaluationContext,
  type JsonValue,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
} from "@openfeature/server-sdk";
import { type FlagDetails, type FlagValue, followStatus } from "@vexil/core";

import { VexilClient, type VexilClientOptions } from "./client.js";

/** The OpenFeature provider of a Node service. */
export class VexilProvider implements Provider {
  readonly metadata = { name: "vexil" } as const;
  readonly runsOn = "server" as const;
  readonly events = new OpenFeatureEventEmitter();
  /** The client the provider answers from. */
  readonly client: VexilClient;
  private readonly timeout: number;

  /** A provider over a new client with these settings, or over a client of the application's. */
  constructor(options: (VexilClientOptions & { readonly readyTimeout?: number }) | VexilClient) {
    this.client = options instanceof VexilClient ? options : new VexilClient(options);
    this.timeout = options instanceof VexilClient ? 10_000 : (options.readyTimeout ?? 10_000);
    this.client.onChange((changed) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [...changed.flags] }));
    followStatus((listener) => this.client.onStatus(listener), () => this.client.lastConnectionError, {
      stale: (message) => this.events.emit(ProviderEvents.Stale, { message }),
      ready: () => this.events.emit(ProviderEvents.Ready),
      error: (message) => this.events.emit(ProviderEvents.Error, { message }),
    });
  }

  /** Waits for the environment's flags (a bootstrap file counts: the provider is then ready, and stale). */
  async initialize(): Promise<void> {
    if (this.client.status === "stale") return;
    await this.client.ready(this.timeout);
  }

  async onClose(): Promise<void> {
    await this.client.close();
  }

  async resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    return resolution(this.client.getBooleanDetails(flagKey, context, defaultValue));
  }

  async resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>> {
    return resolution(this.client.getStringDetails(flagKey, context, defaultValue));
  }

  async resolveNumberEvaluation(flagKey: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>> {
    return resolution(this.client.getNumberDetails(flagKey, context, defaultValue));
  }

  async resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    return resolution(this.client.getJsonDetails(flagKey, context, defaultValue as FlagValue)) as ResolutionDetails<T>;
  }
}

/** A client's answer as OpenFeature's resolution, with where it came from in the flag metadata. */
function resolution<T extends FlagValue>(details: FlagDetails<T>): ResolutionDetails<T> {
  const flagMetadata: Record<string, string | number> = { source: details.source };
  if (details.stateVersion !== undefined) flagMetadata.stateVersion = details.stateVersion;
  if (details.overrideVariable !== undefined) flagMetadata.overrideVariable = details.overrideVariable;
  return {
    value: details.value,
    reason: details.reason,
    flagMetadata,
    ...(details.variant === undefined ? {} : { variant: details.variant }),
    ...(details.errorCode === undefined ? {} : { errorCode: details.errorCode as ErrorCode, errorMessage: details.errorMessage ?? "" }),
  };
}

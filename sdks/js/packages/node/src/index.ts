/**
 * `@vexil/node`: Vexil for Node services. `new VexilClient({ url, sdkKey, environment })` keeps every flag of the
 * environment current over the stream and answers `getBoolean(flag, context, fallback)` locally; the OpenFeature
 * provider is `@vexil/node/openfeature`.
 */

export { type ClientStatus, type FlagsChanged, VexilClient, type VexilClientOptions } from "./client.js";
export type { EvaluationContext, FlagDetails, FlagValue, OverrideWarning, Snapshot, Source } from "@vexil/core";

/**
 * `@vexil/core`: Vexil's flag evaluation engine for JavaScript. Compile a flag's definition and state once per
 * change with {@link compile}, then answer contexts with `CompiledFlag.evaluate`.
 */

export { compile, CompiledFlag, SPLIT_TOTAL } from "./evaluate.js";
export { BUCKETS, bucketOf, murmur3 } from "./murmur3.js";
export type {
  Condition,
  Criticality,
  ErrorCode,
  Evaluation,
  EvaluationContext,
  FlagDefinition,
  FlagState,
  FlagType,
  FlagValue,
  JsonArray,
  JsonObject,
  JsonPrimitive,
  JsonValue,
  Operator,
  Reason,
  RolloutPlan,
  Rule,
  RuleServe,
  Serve,
  Split,
  SplitBucket,
  StateSpec,
  Target,
  Variant,
} from "./types.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { type ConnectionStatus, EventStreamConnection, type EventStreamOptions, StreamRefused } from "./connection.js";
export {
  details,
  type ErrorCode as DetailsErrorCode,
  fallback,
  type FlagDetails,
  mismatch,
  overridden,
  type Source,
  typeOfValue,
  variantOf,
} from "./details.js";
export { MetricsRecorder, type MetricsTransport, UNNAMED_LABEL } from "./metrics.js";
export {
  envVarName,
  flagNameFromEnvVar,
  isFlagName,
  OVERRIDE_PREFIX,
  type OverrideLayer,
  Overrides,
  type OverrideWarning,
  type ParsedOverride,
  parseDotenv,
  parseOverride,
  type ResolvedOverride,
} from "./overrides.js";
export { type ServerSentEvent, SseParser } from "./sse.js";
export { type Change, checkFormat, FlagStore, type Snapshot, type SnapshotFlag, STREAM_FORMAT_VERSION, type StoredFlag } from "./store.js";
export { followStatus, type StatusEvents } from "./provider.js";

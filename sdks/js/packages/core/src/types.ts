/**
 * The wire types of Vexil: flag definitions and states as the server sends them (the JSON of vexil-core's
 * `FlagDefinition` and `FlagState`), the context an application evaluates with, and the answer it gets.
 */

/** A JSON scalar. */
export type JsonPrimitive = string | number | boolean | null;

/** A JSON object. */
export interface JsonObject {
  [member: string]: JsonValue;
}

/** A JSON array. */
export type JsonArray = JsonValue[];

/** Any JSON value. */
export type JsonValue = JsonPrimitive | JsonObject | JsonArray;

/**
 * A value a flag serves: a boolean, a string, a number, or any JSON document for `json` flags (which may
 * also be `null`, as the server accepts it for them).
 */
export type FlagValue = boolean | string | number | JsonObject | JsonArray | null;

/** What kind of value a flag serves. */
export type FlagType = "boolean" | "string" | "number" | "json";

/** How much damage a wrong value of a flag can do. */
export type Criticality = "low" | "medium" | "high" | "critical";

/** A named value of a multivariate flag. */
export interface Variant {
  /** `[a-z0-9][a-z0-9_.-]*`, unique within the flag. */
  name: string;
  /** The value served for this variant; it has the flag's type. */
  value: FlagValue;
  /** What the variant is for. */
  description?: string;
}

/** A flag, defined once for every environment (the wire form of vexil-core's `FlagDefinition`). */
export interface FlagDefinition {
  /** `<category>.<snake_case>`. */
  name: string;
  /** What the flag serves. */
  type: FlagType;
  /** The registry default: what a disabled non-boolean flag serves, and what a flag without a state answers. */
  default: FlagValue;
  /** Named values of a multivariate flag. */
  variants?: Variant[];
  /** What the flag does. */
  description?: string;
  /** Who to ask about it. */
  owner?: string | null;
  /** Free labels for filtering. */
  tags?: string[];
  /** How much a wrong value hurts. */
  criticality?: Criticality;
  /** For string flags: the only values accepted. */
  allowed_values?: string[] | null;
  /** For number flags: the smallest value accepted. */
  min?: number | null;
  /** For number flags: the largest value accepted. */
  max?: number | null;
  /** Still served, but on its way out. */
  deprecated?: boolean;
  /** No longer in use. */
  archived?: boolean;
  /** Monotonic version of the definition. */
  version?: number;
  /** When the flag was created (RFC 3339 UTC). */
  created_at?: string;
  /** When the definition last changed (RFC 3339 UTC). */
  updated_at?: string;
  /** Who last changed the definition. */
  updated_by?: string;
}

/** What is served: a literal value of the flag's type (`{"value": true}`) or a named variant (`{"variant": "b"}`). */
export type Serve = { value: FlagValue; variant?: never } | { variant: string; value?: never };

/** Individual targeting: these targeting keys get this answer. */
export interface Target {
  /** Targeting keys (user ids, tenant ids). */
  keys: string[];
  /** What they are served. */
  serve: Serve;
}

/** The comparisons rule conditions use. */
export type Operator =
  | "equals"
  | "not_equals"
  | "in"
  | "not_in"
  | "contains"
  | "starts_with"
  | "ends_with"
  | "regex"
  | "gt"
  | "gte"
  | "lt"
  | "lte"
  | "semver_eq"
  | "semver_gt"
  | "semver_gte"
  | "semver_lt"
  | "semver_lte";

/** One condition on a context attribute. */
export interface Condition {
  /** The context attribute compared (`country`, `plan`, `app_version`). */
  attribute: string;
  /** How it is compared. */
  operator: Operator;
  /** What it is compared with: the condition holds when any value matches (for `not_*`, when none does). */
  values: JsonValue[];
}

/** One share of a split. */
export interface SplitBucket {
  /** What this share is served. */
  serve: Serve;
  /** Its share in thousandths of a percent (30 % is 30000); a split's weights add up to 100000. */
  weight: number;
}

/** A sticky percentage split. */
export interface Split {
  /** The shares, which take consecutive ranges of the 100000 buckets in this order. */
  buckets: SplitBucket[];
}

/** What a matching rule serves: a value, a variant or a split. */
export type RuleServe =
  | { value: FlagValue; variant?: never; split?: never }
  | { variant: string; value?: never; split?: never }
  | { split: Split; value?: never; variant?: never };

/** A targeting rule: when every condition holds, serve this. */
export interface Rule {
  /** Why the rule exists, for people reading it. */
  description?: string;
  /** All must hold. */
  conditions: Condition[];
  /** What the rule serves. */
  serve: RuleServe;
}

/** What a flag serves in one environment (the wire form of vexil-core's `StateSpec`). */
export interface StateSpec {
  /** The kill switch: a disabled flag serves its off value whatever else is set. */
  enabled: boolean;
  /** What is served when enabled and nothing more specific applies. */
  serve: Serve;
  /** Individual targets, checked first. */
  targets?: Target[];
  /** Ordered rules, first match wins. */
  rules?: Rule[];
  /** The fallthrough split; when set it replaces `serve` for contexts with a targeting key. */
  split?: Split | null;
}

/** A gradual rollout in progress (carried by the state; evaluation ignores it). */
export interface RolloutPlan {
  /** The steps, in thousandths of a percent, ascending. */
  steps: number[];
  /** Seconds between steps. */
  every_seconds: number;
  /** The index of the next step to take. */
  next_step: number;
  /** When the next step is due (RFC 3339 UTC). */
  next_at: string;
  /** Paused plans take no step. */
  paused?: boolean;
  /** Who started it. */
  started_by: string;
  /** Why. */
  reason?: string | null;
  /** When it started (RFC 3339 UTC). */
  started_at?: string;
  /** The state before the plan started. */
  before?: StateSpec | null;
}

/** A flag's state in one environment: its content plus the version and who changed it when. */
export interface FlagState extends StateSpec {
  /** Monotonic per flag and environment. */
  version: number;
  /** Who last changed it. */
  updated_by: string;
  /** When it last changed (RFC 3339 UTC). */
  updated_at: string;
  /** A rollout in progress, if any. */
  rollout?: RolloutPlan | null;
}

/**
 * What a flag is evaluated for, in OpenFeature's shape: the targeting key splits bucket on and targets list,
 * plus attributes rules compare. Only strings, numbers and booleans count as attributes; anything else
 * (`null`, arrays, objects) is treated as absent, and a condition on an absent attribute never holds.
 */
export interface EvaluationContext {
  /** The key splits bucket on and targets list (a user id, a tenant id). */
  targetingKey?: string;
  /** Attributes rules compare (`plan`, `country`, `app_version`). */
  [attribute: string]: unknown;
}

/** Why a flag has the value it has (OpenFeature's resolution reasons). */
export type Reason = "STATIC" | "DEFAULT" | "TARGETING_MATCH" | "SPLIT" | "DISABLED" | "ERROR";

/** Why an evaluation has reason `ERROR`: a split had to choose and the context has no targeting key. */
export type ErrorCode = "TARGETING_KEY_MISSING";

/**
 * The answer for one flag and one context. Results are frozen and shared between calls (values included):
 * do not mutate them.
 */
export interface Evaluation<T extends FlagValue = FlagValue> {
  /** The value served. */
  readonly value: T;
  /** Its variant name, when it has one (`"true"`/`"false"` for booleans). */
  readonly variant?: string | undefined;
  /** Why this value. */
  readonly reason: Reason;
  /** Set when the reason is `ERROR`. */
  readonly errorCode?: ErrorCode | undefined;
  /** What went wrong, for people, when the reason is `ERROR`. */
  readonly errorMessage?: string | undefined;
}

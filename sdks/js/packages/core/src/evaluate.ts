/**
 * Evaluation: what a flag serves to one context, and why. The same engine as vexil-core's `evaluation.rs`.
 *
 * A flag's definition and state are compiled once per change into a {@link CompiledFlag}: variants resolved
 * to values, regexes compiled, targets indexed, split weights turned into bucket ranges, semver values parsed,
 * and every answer that does not depend on the context built in advance as a frozen result. Evaluating then
 * never throws and allocates nothing but what a semver condition parses.
 *
 * Order, first match wins:
 * 1. disabled → the off value (`false`, or the default), reason `DISABLED`;
 * 2. the targeting key is listed in a target → `TARGETING_MATCH`;
 * 3. the first rule whose conditions all hold → its value (`TARGETING_MATCH`) or its split (`SPLIT`);
 * 4. the fallthrough: the split (`SPLIT`) or the served value (`STATIC` when the state has no targeting,
 *    `DEFAULT` otherwise).
 *
 * A split needs a targeting key; without one the answer is the served value with reason `ERROR` and error
 * `TARGETING_KEY_MISSING`. A condition on an attribute the context does not have (or has as `null`, an
 * array or an object) does not hold, whatever its operator. A flag without a state answers the registry
 * default with reason `DEFAULT`, as the Rust SDK does.
 */

import { bucketAfter, bucketPrefix, type Murmur3 } from "./murmur3.js";
import { compileRustRegex } from "./regex.js";
import { compareVersions, parseVersion, type Version } from "./semver.js";
import type {
  Condition,
  Evaluation,
  EvaluationContext,
  FlagDefinition,
  FlagType,
  FlagValue,
  JsonValue,
  Reason,
  Rule,
  Serve,
  Split,
  StateSpec,
} from "./types.js";

/** Split weights are in thousandths of a percent: a split's weights add up to this. */
export const SPLIT_TOTAL = 100_000;

/** What conditions compare: the attribute kinds a context can have. */
type Attribute = string | number | boolean;

/** A condition's comparison, applied to an attribute the context has. */
type Test = (attribute: Attribute) => boolean;

interface CompiledCondition {
  readonly attribute: string;
  readonly test: Test;
}

/** A split's buckets as cumulative upper bounds (exclusive) over `0..SPLIT_TOTAL`, each with its answer. */
class CompiledSplit {
  constructor(
    private readonly uppers: readonly number[],
    private readonly results: readonly Evaluation[],
  ) {}

  /** The answer for a bucket: the first range it is below, else the last one (as the Rust engine). */
  choose(bucket: number): Evaluation {
    const uppers = this.uppers;
    for (let index = 0; index < uppers.length; index++) {
      if (bucket < uppers[index]!) return this.results[index]!;
    }
    return this.results[this.results.length - 1]!;
  }
}

interface CompiledRule {
  readonly conditions: readonly CompiledCondition[];
  readonly outcome: Evaluation | CompiledSplit;
}

/** A value with its variant name. */
interface Served {
  readonly value: FlagValue;
  readonly variant: string | undefined;
}

const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

/** Builds a frozen answer; every answer has the same five fields, so reading them stays monomorphic. */
function answer(served: Served, reason: Reason): Evaluation {
  return Object.freeze({ value: served.value, variant: served.variant, reason, errorCode: undefined, errorMessage: undefined });
}

function missingKeyAnswer(served: Served, flag: string): Evaluation {
  return Object.freeze({
    value: served.value,
    variant: served.variant,
    reason: "ERROR",
    errorCode: "TARGETING_KEY_MISSING",
    errorMessage: `flag ${flag} splits by percentage and the context has no targetingKey; its served value is returned`,
  });
}

/** Copies a JSON value and freezes the copy, so shared answers cannot be changed through them. */
function frozenCopy<T extends FlagValue | JsonValue>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return Object.freeze(value.map((item) => frozenCopy(item))) as T;
  const copy: Record<string, JsonValue> = {};
  for (const [key, member] of Object.entries(value)) copy[key] = frozenCopy(member);
  return Object.freeze(copy) as T;
}

/** JSON equality: objects compare by members whatever their order. */
function jsonEqual(left: unknown, right: unknown): boolean {
  if (left === right) return true;
  if (typeof left !== "object" || typeof right !== "object" || left === null || right === null) return false;
  if (Array.isArray(left) || Array.isArray(right)) {
    if (!Array.isArray(left) || !Array.isArray(right) || left.length !== right.length) return false;
    return left.every((item, index) => jsonEqual(item, right[index]));
  }
  const leftMembers = left as Record<string, unknown>;
  const rightMembers = right as Record<string, unknown>;
  const keys = Object.keys(leftMembers);
  if (keys.length !== Object.keys(rightMembers).length) return false;
  return keys.every((key) => Object.hasOwn(rightMembers, key) && jsonEqual(leftMembers[key], rightMembers[key]));
}

/** Resolves what states serve into values and variant names, as the Rust engine's `served`. */
class ServeResolver {
  private readonly variants = new Map<string, FlagValue>();
  private readonly defaultValue: FlagValue;

  constructor(private readonly definition: FlagDefinition) {
    this.defaultValue = frozenCopy(definition.default);
    for (const variant of definition.variants ?? []) {
      if (!this.variants.has(variant.name)) this.variants.set(variant.name, frozenCopy(variant.value));
    }
  }

  /** A variant serves its value (the default if the definition lacks it); a value serves itself. */
  served(serve: Serve): Served {
    if (typeof serve.variant === "string") {
      const value = this.variants.get(serve.variant);
      return { value: value === undefined ? this.defaultValue : value, variant: serve.variant };
    }
    return this.value(serve.value ?? null);
  }

  /** A literal value, named `true`/`false` for booleans, else after the first variant with an equal value. */
  value(value: FlagValue): Served {
    if (this.definition.type === "boolean" && typeof value === "boolean") return { value, variant: String(value) };
    const variant = (this.definition.variants ?? []).find((candidate) => jsonEqual(candidate.value, value));
    return { value: frozenCopy(value), variant: variant?.name };
  }

  /** What a disabled flag serves: `false` for booleans, the default otherwise. */
  off(): Served {
    return this.value(this.definition.type === "boolean" ? false : this.definition.default);
  }

  /** What a flag without a state answers: the registry default, with no variant name. */
  registryDefault(): Served {
    return { value: this.defaultValue, variant: undefined };
  }
}

function stringsOf(values: readonly JsonValue[]): string[] {
  return values.filter((value): value is string => typeof value === "string");
}

function numbersOf(values: readonly JsonValue[]): number[] {
  return values.filter((value): value is number => typeof value === "number");
}

const NEVER: Test = () => false;

/** `equals`/`in` (and, negated, `not_equals`/`not_in`): same type and same value, no coercion. */
function equalsTest(values: readonly JsonValue[], negate: boolean): Test {
  const strings = new Set(stringsOf(values));
  const numbers = new Set(numbersOf(values));
  const hasTrue = values.includes(true);
  const hasFalse = values.includes(false);
  return (attribute) => {
    const found =
      typeof attribute === "string"
        ? strings.has(attribute)
        : typeof attribute === "number"
          ? numbers.has(attribute)
          : attribute
            ? hasTrue
            : hasFalse;
    return found !== negate;
  };
}

type TextOperator = "contains" | "starts_with" | "ends_with";

/** `contains`, `starts_with`, `ends_with`: on string attributes, any of the values. */
function textTest(operator: TextOperator, values: readonly string[]): Test {
  return (attribute) => {
    if (typeof attribute !== "string") return false;
    for (const value of values) {
      const holds =
        operator === "contains" ? attribute.includes(value) : operator === "starts_with" ? attribute.startsWith(value) : attribute.endsWith(value);
      if (holds) return true;
    }
    return false;
  };
}

/**
 * `regex`: on string attributes, any pattern found anywhere; patterns that do not compile are dropped, as are
 * those a backtracking engine could take seconds on (`^(a+)+$`, refused by the server since; see regex.ts).
 */
function regexTest(patterns: readonly string[]): Test {
  const compiled = patterns.map(compileRustRegex).filter((pattern): pattern is RegExp => pattern !== undefined);
  if (compiled.length === 0) return NEVER;
  return (attribute) => typeof attribute === "string" && compiled.some((pattern) => pattern.test(attribute));
}

type Comparison = "eq" | "gt" | "gte" | "lt" | "lte";

/** Whether an ordering (negative, zero, positive) satisfies a comparison. */
function orderHolds(comparison: Comparison, order: number): boolean {
  switch (comparison) {
    case "eq":
      return order === 0;
    case "gt":
      return order > 0;
    case "gte":
      return order >= 0;
    case "lt":
      return order < 0;
    case "lte":
      return order <= 0;
  }
}

/** `gt`, `gte`, `lt`, `lte`: on number attributes, against any of the numbers (NaN compares with nothing). */
function numericTest(comparison: Exclude<Comparison, "eq">, values: readonly number[]): Test {
  return (attribute) => {
    if (typeof attribute !== "number") return false;
    for (const value of values) {
      const holds =
        comparison === "gt" ? attribute > value : comparison === "gte" ? attribute >= value : comparison === "lt" ? attribute < value : attribute <= value;
      if (holds) return true;
    }
    return false;
  };
}

/** `semver_*`: on string attributes that parse as versions, against any of the values that do. */
function semverTest(comparison: Comparison, values: readonly string[]): Test {
  const versions = values.map(parseVersion).filter((version): version is Version => version !== undefined);
  if (versions.length === 0) return NEVER;
  return (attribute) => {
    if (typeof attribute !== "string") return false;
    const version = parseVersion(attribute);
    if (version === undefined) return false;
    return versions.some((value) => orderHolds(comparison, compareVersions(version, value)));
  };
}

/** The comparison a condition's operator makes; an operator this engine does not know never holds. */
function conditionTest(condition: Condition): Test {
  const values = Array.isArray(condition.values) ? condition.values : [];
  switch (condition.operator) {
    case "equals":
    case "in":
      return equalsTest(values, false);
    case "not_equals":
    case "not_in":
      return equalsTest(values, true);
    case "contains":
    case "starts_with":
    case "ends_with":
      return textTest(condition.operator, stringsOf(values));
    case "regex":
      return regexTest(stringsOf(values));
    case "gt":
    case "gte":
    case "lt":
    case "lte":
      return numericTest(condition.operator, numbersOf(values));
    case "semver_eq":
      return semverTest("eq", stringsOf(values));
    case "semver_gt":
      return semverTest("gt", stringsOf(values));
    case "semver_gte":
      return semverTest("gte", stringsOf(values));
    case "semver_lt":
      return semverTest("lt", stringsOf(values));
    case "semver_lte":
      return semverTest("lte", stringsOf(values));
    default:
      return NEVER;
  }
}

function compileCondition(condition: Condition): CompiledCondition {
  return { attribute: condition.attribute, test: conditionTest(condition) };
}

/**
 * Turns weights into cumulative ranges, skipping zero weights. A split without any positive weight cannot
 * pass the server's validation; rather than fail, it answers with the state's served value.
 */
function compileSplit(split: Split, resolver: ServeResolver, fallback: Served): CompiledSplit {
  const uppers: number[] = [];
  const results: Evaluation[] = [];
  let upper = 0;
  for (const bucket of split.buckets ?? []) {
    if (!(bucket.weight > 0)) continue;
    upper += bucket.weight;
    uppers.push(Math.min(upper, SPLIT_TOTAL));
    results.push(answer(resolver.served(bucket.serve), "SPLIT"));
  }
  if (results.length === 0) return new CompiledSplit([SPLIT_TOTAL], [answer(fallback, "SPLIT")]);
  return new CompiledSplit(uppers, results);
}

function compileRule(rule: Rule, resolver: ServeResolver, fallback: Served): CompiledRule {
  const conditions = (rule.conditions ?? []).map(compileCondition);
  const serve = rule.serve;
  const outcome =
    serve.split !== undefined && serve.split !== null
      ? compileSplit(serve.split, resolver, fallback)
      : answer(typeof serve.variant === "string" ? resolver.served({ variant: serve.variant }) : resolver.value(serve.value ?? null), "TARGETING_MATCH");
  return { conditions, outcome };
}

function compileTargets(state: StateSpec, resolver: ServeResolver): Map<string, Evaluation> {
  const targets = new Map<string, Evaluation>();
  for (const target of state.targets ?? []) {
    const result = answer(resolver.served(target.serve), "TARGETING_MATCH");
    // A key listed twice answers as its first target (the server refuses such states).
    for (const key of target.keys ?? []) if (!targets.has(key)) targets.set(key, result);
  }
  return targets;
}

/** Whether every condition holds; an attribute that is not a string, number or boolean is absent. */
function allHold(conditions: readonly CompiledCondition[], context: EvaluationContext): boolean {
  for (let index = 0; index < conditions.length; index++) {
    const condition = conditions[index]!;
    const value = context[condition.attribute];
    const type = typeof value;
    if (type !== "string" && type !== "number" && type !== "boolean") return false;
    if (!condition.test(value as Attribute)) return false;
  }
  return true;
}

/** What {@link CompiledFlag}'s constructor is given. */
interface CompiledParts {
  readonly name: string;
  readonly type: FlagType;
  readonly version: number;
  readonly hasState: boolean;
  readonly enabled: boolean;
  readonly fixed: Evaluation | undefined;
  readonly targets: ReadonlyMap<string, Evaluation> | undefined;
  readonly rules: readonly CompiledRule[];
  readonly split: CompiledSplit | undefined;
  readonly fallthrough: Evaluation;
  readonly missingKey: Evaluation;
  readonly prefix: Murmur3;
}

/** A flag's definition and state in one environment, ready to evaluate. Build it with {@link compile}. */
export class CompiledFlag {
  /** The flag's name. */
  readonly name: string;
  /** Its type. */
  readonly type: FlagType;
  /** The state's version (0 when the state carries none, or there is no state). */
  readonly version: number;
  /** Whether a state was given; without one the registry default answers. */
  readonly hasState: boolean;
  /** Whether the kill switch is on. */
  readonly enabled: boolean;
  /** Whether the answer can depend on the context (targets, rules or a split on an enabled flag). */
  readonly usesContext: boolean;
  /** The answer when it does not depend on the context. */
  private readonly fixed: Evaluation | undefined;
  private readonly targets: ReadonlyMap<string, Evaluation> | undefined;
  private readonly rules: readonly CompiledRule[];
  private readonly split: CompiledSplit | undefined;
  private readonly fallthrough: Evaluation;
  private readonly missingKey: Evaluation;
  /** Murmur3 after `"<flag>/"`, so bucketing only hashes the targeting key. */
  private readonly prefix: Murmur3;

  private constructor(parts: CompiledParts) {
    this.name = parts.name;
    this.type = parts.type;
    this.version = parts.version;
    this.hasState = parts.hasState;
    this.enabled = parts.enabled;
    this.usesContext = parts.fixed === undefined;
    this.fixed = parts.fixed;
    this.targets = parts.targets;
    this.rules = parts.rules;
    this.split = parts.split;
    this.fallthrough = parts.fallthrough;
    this.missingKey = parts.missingKey;
    this.prefix = parts.prefix;
  }

  /** Compiles a definition and its state (`undefined`/`null`: the flag has no state in this environment). */
  static compile(definition: FlagDefinition, state: StateSpec | null | undefined): CompiledFlag {
    const resolver = new ServeResolver(definition);
    const prefix = bucketPrefix(definition.name);
    if (state === undefined || state === null) return CompiledFlag.withoutState(definition, resolver, prefix);
    const version = "version" in state && typeof state.version === "number" ? state.version : 0;
    const serve = resolver.served(state.serve);
    const targets = compileTargets(state, resolver);
    const rules = (state.rules ?? []).map((rule) => compileRule(rule, resolver, serve));
    const split = state.split === undefined || state.split === null ? undefined : compileSplit(state.split, resolver, serve);
    const untargeted = targets.size === 0 && rules.length === 0;
    const fallthrough = answer(serve, untargeted ? "STATIC" : "DEFAULT");
    const fixed = !state.enabled ? answer(resolver.off(), "DISABLED") : untargeted && split === undefined ? fallthrough : undefined;
    return new CompiledFlag({
      name: definition.name,
      type: definition.type,
      version,
      hasState: true,
      enabled: state.enabled === true,
      fixed,
      targets: targets.size > 0 ? targets : undefined,
      rules,
      split,
      fallthrough,
      missingKey: missingKeyAnswer(serve, definition.name),
      prefix,
    });
  }

  /** A flag the server sent without a state: the registry default answers, with reason `DEFAULT` and no variant. */
  private static withoutState(definition: FlagDefinition, resolver: ServeResolver, prefix: Murmur3): CompiledFlag {
    const registryDefault = answer(resolver.registryDefault(), "DEFAULT");
    return new CompiledFlag({
      name: definition.name,
      type: definition.type,
      version: 0,
      hasState: false,
      enabled: false,
      fixed: registryDefault,
      targets: undefined,
      rules: [],
      split: undefined,
      fallthrough: registryDefault,
      missingKey: registryDefault,
      prefix,
    });
  }

  /** What this flag serves to `context`. Never throws; the result is frozen and may be shared between calls. */
  evaluate(context: EvaluationContext = EMPTY_CONTEXT): Evaluation {
    const fixed = this.fixed;
    if (fixed !== undefined) return fixed;
    return this.target(context ?? EMPTY_CONTEXT);
  }

  private target(context: EvaluationContext): Evaluation {
    const targets = this.targets;
    if (targets !== undefined) {
      const key = context.targetingKey;
      if (typeof key === "string") {
        const listed = targets.get(key);
        if (listed !== undefined) return listed;
      }
    }
    const rules = this.rules;
    for (let index = 0; index < rules.length; index++) {
      const rule = rules[index]!;
      if (allHold(rule.conditions, context)) {
        const outcome = rule.outcome;
        return outcome instanceof CompiledSplit ? this.splitAnswer(outcome, context) : outcome;
      }
    }
    const split = this.split;
    return split === undefined ? this.fallthrough : this.splitAnswer(split, context);
  }

  private splitAnswer(split: CompiledSplit, context: EvaluationContext): Evaluation {
    const key = context.targetingKey;
    if (typeof key !== "string") return this.missingKey;
    return split.choose(bucketAfter(this.prefix, key));
  }
}

/**
 * Compiles a flag's definition and its state in one environment, once per change, into a {@link CompiledFlag}
 * whose `evaluate` answers contexts. `state` may be the wire `FlagState` (its version is kept) or just its
 * spec; `undefined` or `null` when the server sent the definition without a state.
 */
export function compile(definition: FlagDefinition, state: StateSpec | null | undefined): CompiledFlag {
  return CompiledFlag.compile(definition, state);
}

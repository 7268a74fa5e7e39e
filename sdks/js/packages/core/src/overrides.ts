/**
 * The `FF_<FLAG_NAME>` override layer (the same rules as vexil-core's `overrides.rs`, pinned by `spec/overrides.json`).
 *
 * `FF_UI_NEW_FEATURE` ↔ `ui.new_feature`: upper case, the dot becomes `_`. Categories hold no underscore, so the first
 * underscore after `FF_` is always the dot. Values are parsed for the flag's type; a value that does not parse is
 * reported once and skipped, never guessed: the next layer answers.
 */

import type { FlagType, FlagValue } from "./types.js";

/** The prefix of every override variable. */
export const OVERRIDE_PREFIX = "FF_";

/** Where an override came from. */
export type OverrideLayer = "environment_variable" | "dotenv_local";

/** An override that was reported and ignored. */
export interface OverrideWarning {
  /** The variable, `FF_UI_NEW_FEATURE`. */
  readonly variable: string;
  /** Where it was set. */
  readonly layer: OverrideLayer;
  /** The value as written. */
  readonly value: string;
  /** Why it was ignored. */
  readonly message: string;
}

/** An override that parsed for the flag's type. */
export interface ResolvedOverride {
  readonly layer: OverrideLayer;
  readonly variable: string;
  readonly value: FlagValue;
}

const FLAG_NAME = /^[a-z][a-z0-9]{0,31}\.[a-z][a-z0-9_]*$/;

/** Whether `name` is a valid flag name (`<category>.<snake_case>`). */
export function isFlagName(name: string): boolean {
  return name.length <= 100 && FLAG_NAME.test(name) && !name.endsWith("_") && !name.includes("__");
}

/** `ui.new_feature` → `FF_UI_NEW_FEATURE`. */
export function envVarName(flag: string): string {
  return OVERRIDE_PREFIX + flag.toUpperCase().replace(".", "_");
}

/** `FF_EXPERIMENT_VOICE_V2` → `experiment.voice_v2`; `undefined` when the variable cannot name a flag. */
export function flagNameFromEnvVar(variable: string): string | undefined {
  if (!variable.startsWith(OVERRIDE_PREFIX)) return undefined;
  const rest = variable.slice(OVERRIDE_PREFIX.length);
  const underscore = rest.indexOf("_");
  if (underscore === -1) return undefined;
  const category = rest.slice(0, underscore);
  const name = rest.slice(underscore + 1);
  if (/[a-z]/.test(category) || /[a-z]/.test(name)) return undefined;
  const flag = `${category.toLowerCase()}.${name.toLowerCase()}`;
  return isFlagName(flag) ? flag : undefined;
}

/** What Rust's `f64` parser accepts (before the finiteness check). */
const RUST_FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/** A parsed override value, or why it does not parse. */
export type ParsedOverride = { readonly ok: true; readonly value: FlagValue } | { readonly ok: false; readonly message: string };

/** Parses an override value for a flag of `type`: booleans `true/false/1/0/on/off/yes/no` in any case, finite numbers, JSON. */
export function parseOverride(type: FlagType, raw: string): ParsedOverride {
  const trimmed = raw.trim();
  switch (type) {
    case "boolean":
      switch (trimmed.toLowerCase()) {
        case "true":
        case "1":
        case "on":
        case "yes":
          return { ok: true, value: true };
        case "false":
        case "0":
        case "off":
        case "no":
          return { ok: true, value: false };
        default:
          return { ok: false, message: `\`${raw}\` is not a boolean; accepted: true/false, 1/0, on/off, yes/no in any case` };
      }
    case "number": {
      const number = RUST_FLOAT.test(trimmed) ? Number(trimmed.replace(/^\+/, "")) : Number.NaN;
      return Number.isFinite(number) ? { ok: true, value: number } : { ok: false, message: `\`${raw}\` is not a finite number` };
    }
    case "string":
      return { ok: true, value: raw };
    case "json":
      try {
        return { ok: true, value: JSON.parse(trimmed) as FlagValue };
      } catch (error) {
        return { ok: false, message: `\`${raw}\` is not valid JSON: ${(error as Error).message}` };
      }
  }
}

/** Reads `KEY=VALUE` lines of a `.env` file: `#` comments, an optional `export `, single or double quotes. */
export function parseDotenv(text: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const raw of text.split(/\r\n|\n|\r/)) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("export ")) line = line.slice("export ".length);
    const equals = line.indexOf("=");
    if (equals === -1) continue;
    const key = line.slice(0, equals).trim();
    if (key === "" || !/^[A-Za-z0-9_]+$/.test(key)) continue;
    let value = line.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replaceAll("\\n", "\n").replaceAll('\\"', '"');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    } else {
      const comment = value.indexOf(" #");
      if (comment !== -1) value = value.slice(0, comment).trimEnd();
    }
    pairs.push([key, value]);
  }
  return pairs;
}

interface RawOverride {
  readonly variable: string;
  readonly layer: OverrideLayer;
  readonly value: string;
}

const LAYER_WORDS: Record<OverrideLayer, string> = { environment_variable: "environment variable", dotenv_local: ".env.local" };

/**
 * The override sources of one client: the process variables (first) and `.env.local`'s lines, read once. Each flag's
 * winning value is parsed once per type, and every value that does not parse is reported once.
 */
export class Overrides {
  private readonly byFlag = new Map<string, RawOverride[]>();
  private readonly resolved = new Map<string, ResolvedOverride | null>();
  private readonly reported: OverrideWarning[] = [];

  constructor(
    variables: Iterable<readonly [string, string | undefined]>,
    dotenvPairs: Iterable<readonly [string, string]> = [],
    private readonly onWarning: (warning: OverrideWarning) => void = () => {},
  ) {
    for (const [name, value] of variables) {
      if (name.startsWith(OVERRIDE_PREFIX) && value !== undefined) this.add(name, value, "environment_variable");
    }
    for (const [name, value] of dotenvPairs) {
      if (name.startsWith(OVERRIDE_PREFIX)) this.add(name, value, "dotenv_local");
    }
    for (const entries of this.byFlag.values()) {
      entries.sort((left, right) => Number(left.layer !== "environment_variable") - Number(right.layer !== "environment_variable"));
    }
  }

  /** Whether any override names `flag` (cheap: evaluation of flags without one does nothing more). */
  mentions(flag: string): boolean {
    return this.byFlag.has(flag);
  }

  /** The override that wins for `flag` read as `type`, if any. */
  resolve(flag: string, type: FlagType): ResolvedOverride | undefined {
    const entries = this.byFlag.get(flag);
    if (entries === undefined) return undefined;
    const memo = `${flag}\0${type}`;
    const known = this.resolved.get(memo);
    if (known !== undefined) return known ?? undefined;
    let answer: ResolvedOverride | null = null;
    for (const entry of entries) {
      const parsed = parseOverride(type, entry.value);
      if (parsed.ok) {
        answer = { layer: entry.layer, variable: entry.variable, value: parsed.value };
        break;
      }
      this.report({
        variable: entry.variable,
        layer: entry.layer,
        value: entry.value,
        message: `${entry.variable} (${LAYER_WORDS[entry.layer]}) is ignored: ${parsed.message} (flag ${flag} is a ${type} flag)`,
      });
    }
    this.resolved.set(memo, answer);
    return answer ?? undefined;
  }

  /** Every override reported and ignored so far. */
  get warnings(): readonly OverrideWarning[] {
    return this.reported;
  }

  private add(variable: string, value: string, layer: OverrideLayer): void {
    const flag = flagNameFromEnvVar(variable);
    if (flag === undefined) {
      this.report({
        variable,
        layer,
        value,
        message: `${variable} (${LAYER_WORDS[layer]}) does not name a flag: an override is FF_ followed by the flag name in upper case with the dot as \`_\`, such as FF_UI_NEW_FEATURE for ui.new_feature`,
      });
      return;
    }
    // In `.env.local` a later line replaces an earlier one, as in every dotenv reader.
    const entries = (this.byFlag.get(flag) ?? []).filter((entry) => entry.layer !== layer);
    entries.push({ variable, layer, value });
    this.byFlag.set(flag, entries);
  }

  private report(warning: OverrideWarning): void {
    this.reported.push(warning);
    this.onWarning(warning);
  }
}

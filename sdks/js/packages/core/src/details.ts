/**
 * One answer, with where it came from: the override priority (`FF_` process variable, `.env.local`, the stored
 * state, the registry default, the caller's fallback) applied to whatever holds the flags, the same way by the Node
 * client (flags evaluated here from the stream) and the browser client (flags evaluated by the server for one context).
 */

import type { OverrideLayer, Overrides } from "./overrides.js";
import type { FlagType, FlagValue, Reason, Variant } from "./types.js";

/** Where a value came from, highest priority first. */
export type Source = OverrideLayer | "build_override" | "developer_override" | "stored_state" | "registry_default" | "fallback";

/** Why the caller's fallback answered, in OpenFeature's error codes. */
export type ErrorCode = "FLAG_NOT_FOUND" | "TYPE_MISMATCH" | "PROVIDER_NOT_READY" | "TARGETING_KEY_MISSING" | "GENERAL";

/** A flag's value for one context, and why. */
export interface FlagDetails<T extends FlagValue = FlagValue> {
  /** The flag asked for. */
  readonly flag: string;
  /** The value to use. */
  readonly value: T;
  /** Its variant's name, when it has one (`"true"`/`"false"` for booleans). */
  readonly variant: string | undefined;
  /** Why (OpenFeature's reasons; `ERROR` when the fallback answered). */
  readonly reason: Reason;
  /** Which layer answered. */
  readonly source: Source;
  /** Set when something went wrong (the fallback answered, or a split had no targeting key). */
  readonly errorCode: ErrorCode | undefined;
  /** What went wrong, for people. */
  readonly errorMessage: string | undefined;
  /** The override variable that answered (`FF_UI_NEW_FEATURE`), for an override. */
  readonly overrideVariable: string | undefined;
  /** The version of the state that answered, for the stored state. */
  readonly stateVersion: number | undefined;
}

/** The type a typed getter reads, checked against a value's JavaScript type. */
export function typeOfValue(value: FlagValue): FlagType {
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  return "json";
}

/** The name of the variant an overriding value is: `"true"`/`"false"` for booleans, else the first variant with that value. */
export function variantOf(type: FlagType, value: FlagValue, variants: readonly Variant[] | undefined): string | undefined {
  if (type === "boolean") return String(value);
  const serialised = JSON.stringify(value);
  return variants?.find((variant) => JSON.stringify(variant.value) === serialised)?.name;
}

/** A details record with nothing optional set. */
export function details<T extends FlagValue>(
  flag: string,
  value: T,
  reason: Reason,
  source: Source,
  extra: Partial<Omit<FlagDetails<T>, "flag" | "value" | "reason" | "source">> = {},
): FlagDetails<T> {
  return {
    flag,
    value,
    reason,
    source,
    variant: extra.variant,
    errorCode: extra.errorCode,
    errorMessage: extra.errorMessage,
    overrideVariable: extra.overrideVariable,
    stateVersion: extra.stateVersion,
  };
}

/** The caller's fallback, with why it answered. */
export function fallback<T extends FlagValue>(flag: string, value: T, errorCode: ErrorCode, errorMessage: string): FlagDetails<T> {
  return details(flag, value, "ERROR", "fallback", { errorCode, errorMessage });
}

/** The answer of an override layer, when one names the flag and parses for its type. */
export function overridden<T extends FlagValue>(
  overrides: Overrides | undefined,
  flag: string,
  type: FlagType,
  variants: readonly Variant[] | undefined,
): FlagDetails<T> | undefined {
  if (overrides === undefined || !overrides.mentions(flag)) return undefined;
  const found = overrides.resolve(flag, type);
  if (found === undefined) return undefined;
  return details(flag, found.value as T, "STATIC", found.layer, {
    variant: variantOf(type, found.value, variants),
    overrideVariable: found.variable,
  });
}

/** The message of a getter of the wrong type. */
export function mismatch(flag: string, actual: FlagType, asked: FlagType): string {
  return `flag \`${flag}\` is a ${actual} flag, read as ${asked}; the fallback was used`;
}

/**
 * Semantic versions (`1.2.3`, `v2.0.0-beta.1+build.5`) for the `semver_*` operators, parsed and ordered
 * exactly as vexil-core's `semver.rs`: precedence per semver.org §11, build metadata ignored, a leading `v`
 * accepted, each core number a u64 without leading zeros.
 *
 * Numbers are kept as their decimal text, compared by length then by digits, so versions beyond 2^53
 * compare exactly as the Rust engine's u64s.
 */

/** A parsed semantic version. */
export interface Version {
  /** Major, minor and patch, as decimal text without leading zeros. */
  readonly core: readonly [string, string, string];
  /** The pre-release identifiers, dot-separated; empty for a release. */
  readonly pre: string;
}

/** u64::MAX, the largest core number accepted. */
const U64_MAX = "18446744073709551615";

function isDigits(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x30 || code > 0x39) return false;
  }
  return true;
}

function isIdentifierText(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    const alphanumeric = (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
    if (!alphanumeric && code !== 0x2d) return false;
  }
  return true;
}

/** Whether decimal digits (without leading zeros) fit in a u64. */
function fitsU64(digits: string): boolean {
  return digits.length < U64_MAX.length || (digits.length === U64_MAX.length && digits <= U64_MAX);
}

/** Compares two decimal numbers given as digits without leading zeros. */
function compareDecimal(left: string, right: string): number {
  if (left.length !== right.length) return left.length < right.length ? -1 : 1;
  return left === right ? 0 : left < right ? -1 : 1;
}

function parseCoreNumber(part: string): string | undefined {
  if (part.length === 0 || !isDigits(part) || (part.length > 1 && part.charCodeAt(0) === 0x30)) return undefined;
  return fitsU64(part) ? part : undefined;
}

/** Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, a leading `v` accepted; `undefined` when the text is not a version. */
export function parseVersion(input: string): Version | undefined {
  let text = input.charCodeAt(0) === 0x76 ? input.slice(1) : input;
  const plus = text.indexOf("+");
  if (plus >= 0) text = text.slice(0, plus);
  const dash = text.indexOf("-");
  const core = dash >= 0 ? text.slice(0, dash) : text;
  const pre = dash >= 0 ? text.slice(dash + 1) : "";
  const parts = core.split(".");
  if (parts.length !== 3) return undefined;
  const major = parseCoreNumber(parts[0]!);
  const minor = parseCoreNumber(parts[1]!);
  const patch = parseCoreNumber(parts[2]!);
  if (major === undefined || minor === undefined || patch === undefined) return undefined;
  if (dash >= 0 && !isPreRelease(pre)) return undefined;
  return { core: [major, minor, patch], pre };
}

function isPreRelease(pre: string): boolean {
  if (pre.length === 0) return false;
  return pre.split(".").every((part) => part.length > 0 && isIdentifierText(part));
}

/** A pre-release identifier's numeric value as digits without leading zeros, when it is a number that fits a u64. */
function numericIdentifier(identifier: string): string | undefined {
  if (identifier.length === 0 || !isDigits(identifier)) return undefined;
  let start = 0;
  while (start < identifier.length - 1 && identifier.charCodeAt(start) === 0x30) start++;
  const digits = identifier.slice(start);
  return fitsU64(digits) ? digits : undefined;
}

function compareIdentifiers(left: string, right: string): number {
  const leftNumber = numericIdentifier(left);
  const rightNumber = numericIdentifier(right);
  if (leftNumber !== undefined && rightNumber !== undefined) return compareDecimal(leftNumber, rightNumber);
  if (leftNumber !== undefined) return -1;
  if (rightNumber !== undefined) return 1;
  return left === right ? 0 : left < right ? -1 : 1;
}

function comparePreReleases(left: string, right: string): number {
  if (left.length === 0 || right.length === 0) {
    // A release ranks above its pre-releases.
    return left.length === right.length ? 0 : left.length === 0 ? 1 : -1;
  }
  const leftParts = left.split(".");
  const rightParts = right.split(".");
  const shared = Math.min(leftParts.length, rightParts.length);
  for (let index = 0; index < shared; index++) {
    const order = compareIdentifiers(leftParts[index]!, rightParts[index]!);
    if (order !== 0) return order;
  }
  return Math.sign(leftParts.length - rightParts.length);
}

/** Orders two versions: negative when `left` has lower precedence, 0 when equal, positive when higher. */
export function compareVersions(left: Version, right: Version): number {
  for (let index = 0; index < 3; index++) {
    const order = compareDecimal(left.core[index]!, right.core[index]!);
    if (order !== 0) return order;
  }
  return comparePreReleases(left.pre, right.pre);
}

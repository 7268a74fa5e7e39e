// What the engine does beyond spec/evaluation.json: the answer without a state, how Rust-syntax regexes
// behave, which context values count as attributes, and the shape and sharing of results. Expected answers
// are the Rust engine's (vexil-core's CompiledFlag and the regex crate), checked against it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BUCKETS, bucketOf, compile, murmur3, SPLIT_TOTAL } from "../dist/index.js";
import { compileRustRegex } from "../dist/regex.js";

const BOOLEAN = { name: "ui.new_feature", type: "boolean", default: false };

/** A boolean flag serving `true` to contexts whose `attribute` satisfies one condition, `false` otherwise. */
function ruleFlag(attribute, operator, values) {
  return compile(BOOLEAN, {
    enabled: true,
    serve: { value: false },
    rules: [{ conditions: [{ attribute, operator, values }], serve: { value: true } }],
  });
}

function fiftyFifty(flag = BOOLEAN) {
  return compile(flag, {
    enabled: true,
    serve: { value: true },
    split: {
      buckets: [
        { serve: { value: true }, weight: 50000 },
        { serve: { value: false }, weight: 50000 },
      ],
    },
  });
}

test("without a state the registry default answers, with reason DEFAULT and no variant (as the Rust SDK)", () => {
  for (const state of [undefined, null]) {
    const flag = compile({ ...BOOLEAN, default: true }, state);
    const answer = flag.evaluate({ targetingKey: "user-1" });
    assert.equal(answer.value, true);
    assert.equal(answer.reason, "DEFAULT");
    assert.equal(answer.variant, undefined);
    assert.equal(answer.errorCode, undefined);
    assert.equal(flag.hasState, false);
    assert.equal(flag.usesContext, false);
  }
});

test("a disabled boolean serves false even when its default is true", () => {
  const answer = compile({ ...BOOLEAN, default: true }, { enabled: false, serve: { value: true } }).evaluate();
  assert.deepEqual([answer.value, answer.reason, answer.variant], [false, "DISABLED", "false"]);
});

// [pattern, text, whether Rust's regex crate finds a match]
const REGEX_CASES = [
  ["\\d", "٣", true], // Unicode digits, where JS's \d is ASCII
  ["^.$", "\r", true], // `.` excludes only \n
  ["^.$", "\u2028", true],
  ["^.$", "\n", false],
  ["^.$", "😀", true],
  ["\\bpro\\b", "épro", false], // é is a word character
  ["\\bpro\\b", "a pro", true],
  ["^\\w+$", "héllo", true],
  ["^\\w+$", "日本", true],
  ["\\B", "K😀x", false], // no position inside a character
  ["(?i)^pro$", "Pro", true],
  ["(?i)k", "\u212a", true], // KELVIN SIGN folds to k…
  ["(?i-u)k", "\u212a", false], // …but not under ASCII-only case folding
  ["(?P<user>[a-z]+)@asimo\\.io", "pm@asimo.io", true],
  ["^\\p{Greek}+$", "αβγ", true],
  ["(?x) ^ pro \\# # comment", "pro#", true],
  ["(?m)^b$", "a\nb\nc", true],
  ["[[:digit:]]{3}", "12", false],
  ["[\\w&&[^\\d]]+$", "ab1", false],
  ["\\Apro\\z", "pro\n", false],
  ["a\\b{end}", "ab", false],
];

test("regex patterns have the Rust regex crate's meaning", () => {
  for (const [pattern, text, expected] of REGEX_CASES) {
    const answer = ruleFlag("email", "regex", [pattern]).evaluate({ email: text });
    assert.equal(answer.value, expected, `${pattern} on ${JSON.stringify(text)}`);
  }
});

test("a pattern Rust refuses never matches and does not throw; the other patterns still do", () => {
  for (const pattern of ["(", "(?=a)", "a\\1", "[z-a]", "\\p{NoSuchClass}"]) {
    const flag = ruleFlag("email", "regex", [pattern]);
    for (const email of ["a", "(", "aa", "z"]) assert.equal(flag.evaluate({ email }).reason, "DEFAULT", pattern);
  }
  const mixed = ruleFlag("email", "regex", ["(", "@asimo\\.io$"]);
  assert.equal(mixed.evaluate({ email: "pm@asimo.io" }).value, true);
  assert.equal(mixed.evaluate({ email: "pm@b.io" }).value, false);
});

// The shapes vexil-core refuses when a state is written (a repetition of a part that can match in more than one
// way and does not split one way; crates/vexil-core/src/backtracking.rs has the same lists): states stored before
// it did still carry them.
const BACKTRACKING = [
  "^(a+)+$", "(a*)*", "^(\\w+\\s?)*$", "^(([a-z])+.)+[A-Z]([a-z])+$", "(x+x+)+y", "^(a{1,2})*$", "a**",
  "(?:(?:a+)?)+", "^(.+,)*$", "^(a?a)+$", "^([a-z]+-?)+$", "(?i)^([a-z]+ ?)+$", "^(-[a-z]+[a-z0-9]*)*$",
  "^((a+)?)*$", "^(a|a)*$", "^(a|ab)*$", "^(a|aa)+$", "^(\\w|\\d)+$", "^(?i)(a|A)+$", "^(?i:k|\\x{212A})+$",
  "^(a|)+$", "^(a?b|b)+$", "^(foo|bar|fizz)+$", "^(-(a|ab))+$", "^(a(?i)|A)+$", "^(a+){3}$", "^(a+){2}$",
  "^(a{1,10}){1,10}$", "^(a|a){1,20}$", "^(a?){25}a{25}$", "^(a{1,4}){1,4}$", "^((a+)+b)*$", "^((a{1,2}){2}b)*$",
];
const NOT_BACKTRACKING = [
  "@asimo\\.io$", "^user-\\d+$", "^(foo|bar)-[a-z]+$", "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
  "^v?\\d+\\.\\d+(\\.\\d+)?$", "^.+@asimo\\.io$", "^(\\d{1,3}\\.){3}\\d{1,3}$", "^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$",
  "(foo|bar)+", "^(\\d|[a-f])+$", "^(\\w|-)+$", "^(a|b|c)*$", "(?i)^(pro|premium|enterprise)$", "^(\\w)+$",
  "^(ab){2,}$", "^(a|a){2}$", "^(a|A)+$", "^(.|\\n)*$", "^(https?://)?[a-z]+\\.example\\.com(/.*)?$",
  "^(\\d{1,3}\\.){3}$", "^(a{1,3}){1,4}$", "^(a+)?b(c*|c+)?$", "(?x) ^ pro \\# # comment", "\\bpro\\b", "^(a{0}b|a)+$",
  // Repetitions of varying parts that split one way: each repetition's end is fixed by a character it cannot go on with.
  "^[a-z]+(-[a-z]+)*$", "^([a-z0-9-]+\\.)+[a-z]{2,}$", "^(\\w+\\s)*$", "^[a-z0-9]+(\\.[a-z0-9]+)*@example\\.com$",
  "^([a-z]+\\.)*[a-z]+$", "^\\d+(,\\d+)*$", "^(/[a-z0-9_-]+)+/?$", "^([A-Z][a-z]+ ?)+$", "^(\\S+\\s+)*\\S*$",
  "^(-[a-z]+(_[a-z]+)*)*$", "^((-[a-z]+)*\\.)+$", "^(\\d+[a-z]?,)*$", "^([a-z]+=[^&]*&)*$", "(?i)^(-[a-z]+)+$",
  "^(-[a-z]{1,1000})*$", "^(\\.[a-z0-9]+){1,20}$", "^((-[a-z]+)*\\.){3}$", "^((a+)?b)*$",
];

test("patterns a backtracking engine could take seconds on are refused as the server refuses them", () => {
  for (const pattern of BACKTRACKING) assert.equal(compileRustRegex(pattern), undefined, pattern);
  for (const pattern of NOT_BACKTRACKING) assert.ok(compileRustRegex(pattern) instanceof RegExp, pattern);
});

test("a stored state's ^(a+)+$ never matches, and its other patterns still do", () => {
  const flag = ruleFlag("email", "regex", ["^(a+)+$", "@asimo\\.io$"]);
  assert.equal(flag.evaluate({ email: `${"a".repeat(30)}!` }).reason, "DEFAULT");
  assert.equal(flag.evaluate({ email: "aaaa" }).reason, "DEFAULT", "refused like a pattern that does not compile");
  assert.equal(flag.evaluate({ email: "pm@asimo.io" }).value, true, "the state's other patterns still match");
  // The shapes the server accepts keep matching what Rust matches.
  assert.equal(ruleFlag("email", "regex", ["^(\\d{1,3}\\.){3}\\d{1,3}$"]).evaluate({ email: "10.0.0.1" }).value, true);
  assert.equal(ruleFlag("email", "regex", ["^(foo|bar)+$"]).evaluate({ email: "foobarfoo" }).value, true);
  const slug = ruleFlag("slug", "regex", ["^[a-z]+(-[a-z]+)*$"]);
  assert.equal(slug.evaluate({ slug: "new-checkout-flow" }).value, true);
  assert.equal(slug.evaluate({ slug: "new--checkout" }).value, false);
  const domain = ruleFlag("host", "regex", ["^([a-z0-9-]+\\.)+[a-z]{2,}$"]);
  assert.equal(domain.evaluate({ host: "eu-1.shop.example.com" }).value, true);
  assert.equal(domain.evaluate({ host: "localhost" }).value, false);
});

test("null, arrays and objects are absent attributes: no condition holds on them, not even not_equals", () => {
  const flag = ruleFlag("plan", "not_equals", ["free"]);
  for (const plan of [null, undefined, ["pro"], { a: 1 }]) assert.equal(flag.evaluate({ plan }).reason, "DEFAULT");
  assert.equal(flag.evaluate({ plan: "pro" }).reason, "TARGETING_MATCH");
  assert.equal(flag.evaluate({ plan: true }).reason, "TARGETING_MATCH");
});

test("the targeting key is an attribute too", () => {
  const flag = ruleFlag("targetingKey", "starts_with", ["admin-"]);
  assert.equal(flag.evaluate({ targetingKey: "admin-7" }).value, true);
  assert.equal(flag.evaluate({ targetingKey: "user-7" }).value, false);
});

test("semver compares numbers beyond 2^53 exactly", () => {
  const flag = ruleFlag("app_version", "semver_gt", ["9007199254740992.0.0"]);
  assert.equal(flag.evaluate({ app_version: "9007199254740993.0.0" }).value, true);
  assert.equal(flag.evaluate({ app_version: "9007199254740992.0.0" }).value, false);
  assert.equal(flag.evaluate({ app_version: "18446744073709551616.0.0" }).value, false, "beyond u64 is not a version");
});

test("an operator the engine does not know never holds", () => {
  const flag = ruleFlag("plan", "matches_soon", ["pro"]);
  assert.equal(flag.evaluate({ plan: "pro" }).reason, "DEFAULT");
});

test("a split needs a string targeting key; an empty one is a key", () => {
  const flag = fiftyFifty();
  for (const targetingKey of [undefined, null, 42, true]) {
    const answer = flag.evaluate({ targetingKey });
    assert.deepEqual([answer.value, answer.reason, answer.errorCode], [true, "ERROR", "TARGETING_KEY_MISSING"]);
    assert.equal(typeof answer.errorMessage, "string");
  }
  assert.equal(flag.evaluate({ targetingKey: "" }).reason, "SPLIT");
  assert.equal(flag.evaluate().reason, "ERROR");
});

test("split buckets take consecutive ranges of the bucket space in listed order", () => {
  const weights = [12345, 0, 40000, 47655];
  const variants = weights.map((_, index) => ({ name: `v${index}`, value: `value-${index}` }));
  const definition = { name: "experiment.ranges", type: "string", default: "value-0", variants };
  const buckets = weights.map((weight, index) => ({ serve: { variant: `v${index}` }, weight }));
  const flag = compile(definition, { enabled: true, serve: { variant: "v0" }, split: { buckets } });
  assert.equal(weights.reduce((sum, weight) => sum + weight, 0), SPLIT_TOTAL);
  const seen = new Set();
  for (let user = 0; user < 3000; user++) {
    const targetingKey = `user-${user}`;
    const bucket = bucketOf(definition.name, targetingKey);
    assert.ok(bucket >= 0 && bucket < BUCKETS);
    let upper = 0;
    const expected = weights.findIndex((weight) => bucket < (upper += weight));
    const answer = flag.evaluate({ targetingKey });
    assert.equal(answer.variant, `v${expected}`, `${targetingKey} in bucket ${bucket}`);
    assert.equal(answer.value, `value-${expected}`);
    seen.add(answer.variant);
  }
  assert.deepEqual([...seen].sort(), ["v0", "v2", "v3"]);
});

test("results are frozen, shared between calls, and do not hold the caller's objects", () => {
  const definition = { name: "ops.config", type: "json", default: { limits: [1, 2] } };
  const state = { enabled: true, serve: { value: { limits: [3, 4] } } };
  const flag = compile(definition, state);
  const first = flag.evaluate({ targetingKey: "a" });
  assert.equal(flag.evaluate({ targetingKey: "b" }), first);
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.value) && Object.isFrozen(first.value.limits));
  assert.ok(!Object.isFrozen(state.serve.value), "the state given is not frozen");
  state.serve.value.limits.push(5);
  assert.deepEqual(flag.evaluate().value, { limits: [3, 4] });
  const split = fiftyFifty();
  const keys = ["user-1", "user-2", "user-3", "user-42"];
  for (const targetingKey of keys) assert.equal(split.evaluate({ targetingKey }), split.evaluate({ targetingKey: `${targetingKey}` }));
});

test("the compiled flag says what it is", () => {
  const flag = compile(BOOLEAN, { enabled: true, serve: { value: true }, version: 7, updated_by: "a", updated_at: "b" });
  assert.deepEqual([flag.name, flag.type, flag.version, flag.enabled, flag.hasState, flag.usesContext], ["ui.new_feature", "boolean", 7, true, true, false]);
  assert.equal(fiftyFifty().usesContext, true);
  const split = { buckets: [{ serve: { value: true }, weight: SPLIT_TOTAL }] };
  assert.equal(compile(BOOLEAN, { enabled: false, serve: { value: true }, split }).usesContext, false);
});

test("murmur3 hashes UTF-8, lone surrogates as U+FFFD (as TextEncoder)", () => {
  assert.equal(murmur3("a\ud800b"), murmur3("a\ufffdb"));
  assert.equal(murmur3("\udc00"), murmur3("\ufffd"));
  assert.equal(murmur3("😀"), murmur3("\ud83d\ude00"));
  assert.notEqual(murmur3("😀"), murmur3("\ufffd\ufffd"));
  assert.equal(murmur3(""), 0);
  assert.equal(murmur3("", 1), 0x514e28b7);
});

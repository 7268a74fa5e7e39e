// Runs the contract every Vexil implementation passes: spec/evaluation.json (one test per case) and
// spec/bucketing.json (every murmur3 vector), against the built package.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { bucketOf, compile, murmur3 } from "../dist/index.js";

function readSpec(name) {
  return JSON.parse(readFileSync(new URL(`../../../../../spec/${name}`, import.meta.url), "utf8"));
}

const evaluation = readSpec("evaluation.json");
const bucketing = readSpec("bucketing.json");

// What an `expect` may say. Absent `variant` and `error` mean none: the Rust test compares
// `evaluation.variant` with `expect["variant"].as_str()`, which is `None` when the key is missing.
const EXPECT_KEYS = new Set(["value", "reason", "variant", "error"]);

test("the evaluation spec has its cases, each named once", () => {
  assert.ok(evaluation.cases.length >= 60, `${evaluation.cases.length} cases`);
  const names = evaluation.cases.map((testCase) => testCase.name);
  assert.equal(new Set(names).size, names.length);
});

for (const testCase of evaluation.cases) {
  test(testCase.name, () => {
    const { expect } = testCase;
    assert.deepEqual(
      Object.keys(expect).filter((key) => !EXPECT_KEYS.has(key)),
      [],
      "the case expects something this test does not check",
    );
    // As the Rust spec test does, the state gets the fields a stored state has.
    const state = { ...testCase.state, version: 1, updated_by: "spec", updated_at: "2025-12-04T10:30:00Z" };
    const flag = compile(testCase.flag, state);
    const answer = flag.evaluate(testCase.context ?? {});
    assert.deepEqual(answer.value, expect.value, "value");
    assert.equal(answer.reason, expect.reason, "reason");
    assert.equal(answer.variant, expect.variant, "variant");
    assert.equal(answer.errorCode, expect.error, "error");
    assert.equal(flag.version, 1, "version");
  });
}

test("every bucketing vector hashes and buckets as specified", () => {
  assert.equal(bucketing.algorithm, "murmur3_x86_32");
  assert.equal(bucketing.seed, 0);
  assert.equal(bucketing.buckets, 100000);
  assert.ok(bucketing.vectors.length >= 50, `${bucketing.vectors.length} vectors`);
  for (const { flag, targeting_key: key, hash, bucket } of bucketing.vectors) {
    const label = JSON.stringify(`${flag}/${key}`);
    assert.equal(murmur3(`${flag}/${key}`), hash, `hash of ${label}`);
    assert.equal(bucketOf(flag, key), bucket, `bucket of ${label}`);
  }
});

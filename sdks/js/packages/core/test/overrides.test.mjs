// spec/overrides.json's names, spellings and .env.local lines, read the same way as vexil-core reads them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { envVarName, flagNameFromEnvVar, parseDotenv, parseOverride, Overrides } from "../dist/index.js";

const spec = JSON.parse(readFileSync(new URL("../../../../../spec/overrides.json", import.meta.url), "utf8"));

test("flag names map to variables and back", () => {
  for (const [flag, variable] of spec.names) {
    assert.equal(envVarName(flag), variable);
    assert.equal(flagNameFromEnvVar(variable), flag);
  }
  for (const variable of spec.not_names) assert.equal(flagNameFromEnvVar(variable), undefined, variable);
});

test("boolean spellings", () => {
  for (const raw of spec.boolean_spellings.true) assert.deepEqual(parseOverride("boolean", raw), { ok: true, value: true }, raw);
  for (const raw of spec.boolean_spellings.false) assert.deepEqual(parseOverride("boolean", raw), { ok: true, value: false }, raw);
  for (const raw of spec.boolean_spellings.invalid) {
    const parsed = parseOverride("boolean", raw);
    assert.equal(parsed.ok, false, raw);
    assert.match(parsed.message, /accepted: true\/false, 1\/0, on\/off, yes\/no in any case/);
  }
});

test("numbers are finite, JSON parses and strings stay as written", () => {
  assert.deepEqual(parseOverride("number", "25"), { ok: true, value: 25 });
  assert.deepEqual(parseOverride("number", " 2.5 "), { ok: true, value: 2.5 });
  assert.deepEqual(parseOverride("number", "1e3"), { ok: true, value: 1000 });
  for (const raw of ["NaN", "inf", "", "0x10", "1_000", "lots"]) assert.equal(parseOverride("number", raw).ok, false, raw);
  assert.deepEqual(parseOverride("json", '{"a":1}'), { ok: true, value: { a: 1 } });
  assert.equal(parseOverride("json", "{").ok, false);
  assert.deepEqual(parseOverride("string", " x "), { ok: true, value: " x " });
});

test(".env.local lines", () => {
  assert.deepEqual(parseDotenv(spec.dotenv.text), spec.dotenv.pairs);
});

test("a process variable beats .env.local, a later .env.local line beats an earlier one, and a bad value is reported once", () => {
  const warnings = [];
  const overrides = new Overrides(
    [["FF_UI_NEW_FEATURE", "maybe"], ["FF_UI", "on"], ["PATH", "/bin"]],
    parseDotenv("FF_UI_NEW_FEATURE=false\nFF_UI_NEW_FEATURE=true\n"),
    (warning) => warnings.push(warning),
  );
  assert.deepEqual(overrides.resolve("ui.new_feature", "boolean"), { layer: "dotenv_local", variable: "FF_UI_NEW_FEATURE", value: true });
  overrides.resolve("ui.new_feature", "boolean");
  assert.deepEqual(warnings.map((warning) => [warning.variable, warning.layer]), [["FF_UI", "environment_variable"], ["FF_UI_NEW_FEATURE", "environment_variable"]]);
  assert.match(warnings[1].message, /FF_UI_NEW_FEATURE \(environment variable\) is ignored: `maybe` is not a boolean.*\(flag ui.new_feature is a boolean flag\)/);
  assert.equal(overrides.mentions("ui.other"), false);
});

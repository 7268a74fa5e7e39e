// spec/overrides.json, row by row, on clients started from a bootstrap file with nothing listening: the seed's
// override priority exactly as the Rust SDK's table states it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VexilClient } from "../dist/index.js";

const spec = JSON.parse(readFileSync(new URL("../../../../../spec/overrides.json", import.meta.url), "utf8"));
const NOWHERE = "http://127.0.0.1:9";

/** A client with exactly these override sources, holding `flags` (from a bootstrap file), never connected. */
function offline({ flags, variables = {}, dotenv, defaults }) {
  const directory = mkdtempSync(join(tmpdir(), "vexil-overrides-"));
  const bootstrapFile = join(directory, "bootstrap.json");
  writeFileSync(bootstrapFile, JSON.stringify({ version: 1, environment: "staging", revision: 42, flags }));
  const dotenvPath = join(directory, ".env.local");
  if (dotenv !== undefined) writeFileSync(dotenvPath, `# written by the test\n${dotenv}\n`);
  const warnings = [];
  const client = new VexilClient({
    url: NOWHERE, sdkKey: "vxs_unused", environment: "staging", env: variables, dotenvPath, bootstrapFile, defaults,
    metricsInterval: false, onWarning: (warning) => warnings.push(warning), backoff: { initial: 60_000 },
  });
  return { client, warnings };
}

const stored = { definition: spec.definition, state: spec.state };
const definitionOnly = { definition: spec.definition };

for (const [index, row] of spec.rows.entries()) {
  test(`row ${index}: variable ${JSON.stringify(row.variable)}, .env.local ${JSON.stringify(row.dotenv)}, flag ${row.flag}`, async () => {
    const flags = { stored: [stored], definition_only: [definitionOnly], unknown: [] }[row.flag];
    const { client, warnings } = offline({
      flags,
      variables: row.variable === null ? {} : { [spec.variable]: row.variable },
      dotenv: row.dotenv === null ? undefined : `${spec.variable}=${row.dotenv}`,
    });
    try {
      const context = { targetingKey: "user-1" };
      const details = client.getNumberDetails(spec.flag, context, spec.fallback);
      assert.deepEqual([details.value, details.source, details.reason], [row.expect.value, row.expect.source, row.expect.reason], JSON.stringify(details));
      assert.equal(client.getNumber(spec.flag, context, spec.fallback), row.expect.value, "the plain getter agrees");
      assert.equal(details.errorCode, row.expect.error);
      const overridden = row.expect.source === "environment_variable" || row.expect.source === "dotenv_local";
      assert.equal(details.overrideVariable, overridden ? spec.variable : undefined);
      assert.equal(details.stateVersion, row.expect.source === "stored_state" ? spec.state.version : undefined);
      assert.deepEqual(warnings.map((warning) => warning.layer), row.expect.ignored);
      for (const warning of warnings) {
        assert.equal(warning.variable, spec.variable);
        assert.ok(warning.message.includes(spec.variable) && warning.message.includes("number"), warning.message);
      }
    } finally {
      await client.close();
    }
  });
}

test("a known flag's invalid override is reported when its definition arrives, once", async () => {
  const { client, warnings } = offline({ flags: [stored], variables: { [spec.variable]: "twelve" } });
  assert.equal(warnings.length, 1, "reported before any getter ran");
  assert.match(warnings[0].message, /`twelve` is not a finite number/);
  for (let read = 0; read < 3; read++) assert.equal(client.getNumber(spec.flag, {}, 5), 3);
  assert.equal(client.overrideWarnings.length, 1);
  await client.close();
});

test("boolean overrides take every documented spelling and name their variant", async () => {
  const flag = { definition: { name: "ui.new_feature", type: "boolean", default: false }, state: { enabled: false, serve: { value: true }, version: 1, updated_by: "a", updated_at: "2026-01-01T00:00:00Z" } };
  for (const [which, expected] of [["true", true], ["false", false]]) {
    for (const raw of spec.boolean_spellings[which]) {
      const { client } = offline({ flags: [flag], variables: { FF_UI_NEW_FEATURE: raw } });
      const details = client.getBooleanDetails("ui.new_feature", {}, !expected);
      assert.deepEqual([details.value, details.source, details.variant], [expected, "environment_variable", String(expected)], raw);
      await client.close();
    }
  }
});

test("an override of a multivariate flag names the variant with that value", async () => {
  const flag = {
    definition: { name: "experiment.voice_v2", type: "string", default: "a", variants: [{ name: "control", value: "a" }, { name: "treatment", value: "b" }] },
    state: { enabled: true, serve: { variant: "control" }, version: 3, updated_by: "a", updated_at: "2026-01-01T00:00:00Z" },
  };
  const { client } = offline({ flags: [flag], dotenv: "FF_EXPERIMENT_VOICE_V2=b" });
  const details = client.getStringDetails("experiment.voice_v2", {}, "z");
  assert.deepEqual([details.value, details.source, details.variant], ["b", "dotenv_local", "treatment"]);
  assert.equal(process.env.FF_EXPERIMENT_VOICE_V2, undefined, ".env.local is read without touching process.env");
  await client.close();
});

test("a getter of the wrong type gets the fallback with TYPE_MISMATCH, even when overridden; an unknown name FLAG_NOT_FOUND", async () => {
  const { client } = offline({ flags: [stored], variables: { [spec.variable]: "1" } });
  const details = client.getBooleanDetails(spec.flag, {}, true);
  assert.deepEqual([details.value, details.source, details.reason, details.errorCode], [true, "fallback", "ERROR", "TYPE_MISMATCH"]);
  assert.equal(details.errorMessage, "flag `backend.rag_max_results` is a number flag, read as boolean; the fallback was used");
  const unknown = client.getBooleanDetails("not a flag name", {}, true);
  assert.deepEqual([unknown.value, unknown.errorCode], [true, "FLAG_NOT_FOUND"]);
  assert.equal(unknown.errorMessage, "environment `staging` has no flag `not a flag name`; the fallback was used");
  await client.close();
});

test("the generated registry defaults answer a flag the server has not sent, before the caller's fallback", async () => {
  const { client } = offline({ flags: [], defaults: { "ui.from_registry": true } });
  const details = client.getBooleanDetails("ui.from_registry", {}, false);
  assert.deepEqual([details.value, details.source, details.reason], [true, "registry_default", "DEFAULT"]);
  assert.equal(client.forContext({}).get("ui.from_registry", false), true, "the reader codegen's flag() takes");
  await client.close();
});

// @vexil/browser in headless Chromium on another origin: our OpenFeature web provider under the official
// @openfeature/web-sdk (status, events, error codes, a context change), and what a client-side key can reach.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "../../../test-support/server.mjs";
import { launchBrowser, pageEventually, servePages } from "../../../test-support/browser.mjs";

let server;
let pages;
let browser;

before(async () => {
  server = await Server.start();
  server.cli(["define", "ui.new_feature"]);
  server.cli(["define", "ui.theme", "--type", "string", "--default", "light"]);
  server.cli(["define", "ui.staff_banner"]);
  const rules = JSON.stringify({ rules: [{ conditions: [{ attribute: "email", operator: "ends_with", values: ["@asimo.io"] }], serve: { value: true } }] });
  const file = `${server.data}.rules.json`;
  (await import("node:fs")).writeFileSync(file, rules);
  server.cli(["set", "ui.staff_banner", "--env", "dev", "--enabled", "true", "--value", "false", "--rules", file]);
  pages = await servePages();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await pages?.close();
  await server?.close();
});

test("our provider under the official web SDK: ready, values with reasons, error codes, changes and a new context", async () => {
  const key = server.key("client", "dev");
  const page = await browser.newPage();
  await page.goto(`${pages.origin}/?mode=openfeature&server=${encodeURIComponent(server.url)}&key=${key}`);
  assert.equal(await page.evaluate(() => window.vexilTest.openfeature), true);
  assert.equal(await page.evaluate(() => window.vexilTest.status()), "READY");
  const details = await page.evaluate(() => {
    const client = window.vexilTest.of;
    const pick = (d) => ({ value: d.value, reason: d.reason, variant: d.variant ?? null, errorCode: d.errorCode ?? null });
    return {
      feature: pick(client.getBooleanDetails("ui.new_feature", true)),
      missing: pick(client.getBooleanDetails("ui.nothing_here", true)),
      wrongType: pick(client.getNumberDetails("ui.theme", 7)),
      staff: pick(client.getBooleanDetails("ui.staff_banner", false)),
    };
  });
  assert.deepEqual(details.feature, { value: false, reason: "DISABLED", variant: "false", errorCode: null });
  assert.deepEqual(details.missing, { value: true, reason: "ERROR", variant: null, errorCode: "FLAG_NOT_FOUND" });
  assert.deepEqual(details.wrongType, { value: 7, reason: "ERROR", variant: null, errorCode: "TYPE_MISMATCH" });
  assert.deepEqual(details.staff, { value: false, reason: "DEFAULT", variant: "false", errorCode: null }, "ada@example.com is no staff");

  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  const changed = await pageEventually(page, () => window.vexilTest.changes.length > 0 && window.vexilTest.changes[0], "ConfigurationChanged");
  assert.deepEqual(changed, ["ui.new_feature"]);
  assert.equal(await page.evaluate(() => window.vexilTest.of.getBooleanValue("ui.new_feature", false)), true);

  // A new context (the user logged in) is evaluated by the server: the rule applies to it.
  const staff = await page.evaluate(async () => {
    await window.vexilTest.setContext({ targetingKey: "carol", email: "carol@asimo.io" });
    const d = window.vexilTest.of.getBooleanDetails("ui.staff_banner", false);
    return { value: d.value, reason: d.reason };
  });
  assert.deepEqual(staff, { value: true, reason: "TARGETING_MATCH" });
  await page.close();
});

test("a client-side key reaches evaluations of its own environment only: never the stream, another environment or the API", async () => {
  const key = server.key("client", "dev");
  const bearer = { authorization: `Bearer ${key}` };
  assert.equal((await fetch(`${server.url}/api/feature-flags/stream?env=dev`, { headers: bearer })).status, 403);
  assert.equal((await fetch(`${server.url}/api/feature-flags/stream?env=prod`, { headers: bearer })).status, 403);
  assert.equal((await fetch(`${server.url}/api/flags`, { headers: bearer })).status, 403);
  const answer = await fetch(`${server.url}/ofrep/v1/evaluate/flags`, { method: "POST", headers: { ...bearer, "content-type": "application/json" }, body: "{}" });
  const text = await answer.text();
  assert.equal(answer.status, 200);
  for (const secret of ["@asimo.io", "ends_with", "admin@localhost"]) assert.ok(!text.includes(secret), `the answer names ${secret}: ${text}`);
  const body = JSON.parse(text);
  assert.ok(body.flags.every((flag) => flag.metadata.environment === "dev"), "dev's flags only");
});

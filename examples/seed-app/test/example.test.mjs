// The example application, as a newcomer runs it: its generated featureFlags.ts is current, it builds, its Node
// service answers its users' flags and follows a CLI change live, its React page (in headless Chromium) starts from
// the service's answer and follows the change too, and the seed's npm command promotes from its directory.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, Server, eventually, vexilBinary } from "../../../sdks/js/test-support/server.mjs";
import { launchBrowser, pageEventually } from "../../../sdks/js/test-support/browser.mjs";

const app = fileURLToPath(new URL("..", import.meta.url));
const path = `${dirname(vexilBinary())}:${process.env.PATH}`;
let server;
let service;
let serviceUrl;
let browser;

function npm(args, env = {}) {
  const result = spawnSync("npm", ["run", "--silent", ...args], { cwd: app, encoding: "utf8", env: { ...process.env, PATH: path, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

before(async () => {
  server = await Server.start();
  server.cli(["apply", `${app}/flags.toml`]);
  const sdkKey = server.key("sdk", "dev");
  const clientKey = server.key("client", "dev");
  const build = npm(["build"]);
  assert.equal(build.code, 0, build.stderr);
  const child = spawn("node", ["dist/service.js"], {
    cwd: app,
    env: { ...process.env, VEXIL_URL: server.url, VEXIL_ENV: "dev", VEXIL_SDK_KEY: sdkKey, VEXIL_CLIENT_KEY: clientKey, PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  service = child;
  serviceUrl = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the service exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const found = /listening on (\S+)/.exec(line);
      if (found) resolve(found[1]);
    });
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  service?.kill();
  await server?.close();
});

test("featureFlags.ts is what `vexil codegen` makes of flags.toml", () => {
  const checked = npm(["flags:check"]);
  assert.equal(checked.code, 0, checked.stderr);
});

test("the Node service answers its users' flags and follows a CLI change live", async () => {
  const answer = async () => (await fetch(`${serviceUrl}/api/flags?user=ada`)).json();
  const before = await answer();
  assert.equal(before.status, "ready");
  assert.deepEqual(before.flags, { "ui.new_feature": false, "ui.problem_feature": false, "experiment.voice_v2": "control", "backend.rag_max_results": 5 });
  server.cli(["set", "backend.rag_max_results", "--env", "dev", "--enabled", "true", "--value", "20"]);
  await eventually(async () => (await answer()).flags["backend.rag_max_results"] === 20, "the service serves 20");
});

test("the page starts from the service's answer and follows a CLI change without a reload", async () => {
  const page = await browser.newPage();
  await page.goto(`${serviceUrl}/?user=ada`);
  await pageEventually(page, () => document.getElementById("status")?.textContent === "flags: ready", "the page is live");
  assert.equal(await page.$eval("#new-feature", (node) => node.textContent), "The classic panel");
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("new-feature").textContent === "The new voice panel is on", "the page follows the change");
  await page.close();
});

test("npm run flags:promote ui.new_feature --from=dev --to=staging, from the application's directory", async () => {
  const promoted = npm(["flags:promote", "ui.new_feature", "--from=dev", "--to=staging"], { VEXIL_SERVER: server.url, VEXIL_TOKEN: ADMIN_TOKEN });
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.match(promoted.stdout, /✓ ui\.new_feature promoted dev → staging/);
  const state = execFileSync(vexilBinary(), ["get", "ui.new_feature", "--env", "staging", "-o", "json"], {
    encoding: "utf8", env: { ...process.env, VEXIL_SERVER: server.url, VEXIL_TOKEN: ADMIN_TOKEN },
  });
  assert.equal(JSON.parse(state).state.enabled, true, state);
});

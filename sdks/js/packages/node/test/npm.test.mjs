// The seed's npm commands with the real npm: the packages packed (`npm pack`) and installed in a project whose
// package.json names the bin, then `npm run flags:promote …` and `npm run flags:disable …` exactly as the seed writes
// them (npm turns --from, --to, --env, --reason into npm_config_* variables; the bin reads them back).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, Server } from "../../../test-support/server.mjs";

const packages = fileURLToPath(new URL("../../", import.meta.url));
let server;
let project;

before(async () => {
  server = await Server.start();
  project = mkdtempSync(join(tmpdir(), "vexil-npm-"));
  const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", project, join(packages, "core"), join(packages, "node")], { encoding: "utf8" })
    .trim()
    .split("\n");
  const app = join(project, "app");
  execFileSync("mkdir", [app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({
    name: "seed-app", private: true,
    scripts: { "flags:promote": "vexil-flags promote", "flags:disable": "vexil-flags disable", "flags:enable": "vexil-flags enable" },
  }));
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", ...packed.map((file) => join(project, file))], { cwd: app });
  project = app;
});

after(async () => {
  await server.close();
});

function npm(args, token = ADMIN_TOKEN) {
  const result = spawnSync("npm", ["run", "--silent", ...args], {
    cwd: project,
    encoding: "utf8",
    env: { ...process.env, VEXIL_SERVER: server.url, VEXIL_TOKEN: token, VEXIL_CONFIG_DIR: project },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function state(flag, environment) {
  const response = await fetch(`${server.url}/api/flags/${flag}/environments/${environment}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return (await response.json()).state;
}

test("npm run flags:promote ui.new_feature --from=dev --to=staging promotes, as the seed writes it", async () => {
  server.cli(["define", "ui.new_feature"]);
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  const promoted = npm(["flags:promote", "ui.new_feature", "--from=dev", "--to=staging"]);
  assert.equal(promoted.code, 0, promoted.stderr);
  assert.match(promoted.stdout, /promoting ui\.new_feature dev → staging:\n {2}turned on\n✓ ui\.new_feature promoted dev → staging/);
  assert.equal((await state("ui.new_feature", "staging")).enabled, true);
  const again = npm(["flags:promote", "ui.new_feature", "--from=dev", "--to=staging"]);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already serves what dev serves; nothing to promote/);
});

test("promoting to production needs a reason and a confirmation, and refuses with exit 3 and nothing changed without them", async () => {
  const refused = npm(["flags:promote", "ui.new_feature", "--from=staging", "--to=prod"]);
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /prod is protected: promoting ui\.new_feature needs a reason \(--reason=…\), and there is no terminal to ask on; nothing was changed/);
  assert.equal((await state("ui.new_feature", "prod")).enabled, false);
  const unconfirmed = npm(["flags:promote", "ui.new_feature", "--from=staging", "--to=prod", "--reason=launch"]);
  assert.equal(unconfirmed.code, 3);
  assert.match(unconfirmed.stderr, /needs confirmation \(--yes\)/);
  const done = npm(["flags:promote", "ui.new_feature", "--from=staging", "--to=prod", "--reason=launch", "--yes"]);
  assert.equal(done.code, 0, done.stderr);
  assert.equal((await state("ui.new_feature", "prod")).enabled, true);
});

test("npm run flags:disable ui.problem_feature --env=prod --reason=\"Incident #123\" turns it off at once, with the reason in the audit trail", async () => {
  server.cli(["define", "ui.problem_feature"]);
  server.cli(["enable", "ui.problem_feature", "--env", "prod", "--reason", "launch", "--yes"]);
  const disabled = npm(["flags:disable", "ui.problem_feature", "--env=prod", "--reason=Incident #123"]);
  assert.equal(disabled.code, 0, disabled.stderr);
  assert.match(disabled.stdout, /✓ ui\.problem_feature disabled in prod/);
  assert.equal((await state("ui.problem_feature", "prod")).enabled, false);
  const audit = await (await fetch(`${server.url}/api/flags/audit?flag=ui.problem_feature&env=prod`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
  const entries = audit.entries ?? audit;
  assert.equal(entries[0].reason, "Incident #123", JSON.stringify(entries[0]));
});

test("mistakes are usage errors (exit 2) and a developer is refused production (exit 3), each saying what to do", async () => {
  const noTarget = npm(["flags:promote", "ui.new_feature", "--from=dev"]);
  assert.equal(noTarget.code, 2);
  assert.match(noTarget.stderr, /promote needs --from and --to/);
  const unknown = npm(["flags:disable", "ui.no_such_flag", "--env=dev"]);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /ui\.no_such_flag/);
  const environment = npm(["flags:disable", "ui.new_feature", "--env=qa"]);
  assert.equal(environment.code, 2);
  assert.match(environment.stderr, /no environment `qa`; there are dev, staging, prod/);
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const added = await fetch(`${server.url}/api/users`, { method: "POST", headers: admin, body: JSON.stringify({ email: "dev@example.com", role: "developer", password: "a long password" }) });
  assert.equal(added.status, 201);
  const developer = (await (await fetch(`${server.url}/api/tokens`, { method: "POST", headers: admin, body: JSON.stringify({ user: "dev@example.com" }) })).json()).token;
  const forbidden = npm(["flags:disable", "ui.new_feature", "--env=prod", "--reason=not mine to change"], developer);
  assert.equal(forbidden.code, 3, forbidden.stderr);
  assert.match(forbidden.stderr, /admin/);
  assert.equal((await state("ui.new_feature", "prod")).enabled, true, "nothing changed");
});

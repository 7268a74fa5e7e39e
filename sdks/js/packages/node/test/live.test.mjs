// The Node client against the real server: a CLI change reaches it live, a restarted server is found again and the
// stream resumes with exactly the missed changes, a bootstrap file carries an offline start, metrics reach the
// guard's totals, and a key of another environment is refused and said so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VexilClient } from "../dist/index.js";
import { ADMIN_TOKEN, MOMENT, Server, eventually, next } from "../../../test-support/server.mjs";

function client(server, key, options = {}) {
  return new VexilClient({ url: server.url, sdkKey: key, environment: "dev", env: {}, dotenvPath: false, metricsInterval: false, ...options });
}

test("a change made with the CLI reaches a Node client live, and each change is one event", async () => {
  const server = await Server.start();
  try {
    server.cli(["define", "ui.new_feature"]);
    server.cli(["define", "experiment.checkout", "--type", "string", "--default", "control"]);
    const vexil = client(server, server.key("sdk", "dev"));
    await vexil.ready(MOMENT);
    assert.equal(vexil.getBoolean("ui.new_feature", {}, true), false, "defined, off");
    const changed = next((listener) => vexil.onChange(listener), "the change event");
    server.cli(["enable", "ui.new_feature", "--env", "dev"]);
    const event = await changed;
    assert.deepEqual([event.kind, event.flags], ["change", ["ui.new_feature"]]);
    assert.equal(vexil.getBoolean("ui.new_feature", {}, false), true);
    const details = vexil.getBooleanDetails("ui.new_feature", { targetingKey: "u1" }, false);
    assert.deepEqual([details.source, details.reason, details.variant], ["stored_state", "STATIC", "true"]);
    // A split is evaluated here, per context, sticky.
    server.cli(["set", "experiment.checkout", "--env", "dev", "--enabled", "true", "--value", "treatment"]);
    await eventually(() => vexil.getString("experiment.checkout", {}, "x") === "treatment", "the string flag's new value");
    await vexil.close();
  } finally {
    await server.close();
  }
});

test("after a server restart the client resumes by Last-Event-ID and gets exactly the missed change", async () => {
  const server = await Server.start();
  try {
    server.cli(["define", "ui.new_feature"]);
    const vexil = client(server, server.key("sdk", "dev"), { backoff: { initial: 200, maximum: 1000 } });
    await vexil.ready(MOMENT);
    const revision = vexil.revision;
    const stale = next((listener) => vexil.onStatus(listener), "the client turns stale");
    await server.stop();
    assert.equal(await stale, "stale");
    assert.ok(vexil.lastConnectionError, "it says why");
    const answer = vexil.getBooleanDetails("ui.new_feature", {}, true);
    assert.deepEqual([answer.value, answer.source], [false, "stored_state"], "a stale client answers from what it holds");
    await server.launch(server.address);
    const changed = next((listener) => vexil.onChange(listener), "the missed change");
    server.cli(["enable", "ui.new_feature", "--env", "dev"]);
    const event = await changed;
    assert.deepEqual(event, { kind: "change", revision: revision + 1, flags: ["ui.new_feature"] }, "resumed, not restarted with a snapshot");
    await eventually(() => vexil.status === "ready", "ready again");
    assert.equal(vexil.getBoolean("ui.new_feature", {}, false), true);
    await vexil.close();
  } finally {
    await server.close();
  }
});

test("a bootstrap file carries an offline start until the server is reachable", async () => {
  const server = await Server.start();
  const directory = mkdtempSync(join(tmpdir(), "vexil-bootstrap-"));
  const bootstrapFile = join(directory, "flags.json");
  try {
    server.cli(["define", "ui.new_feature"]);
    server.cli(["enable", "ui.new_feature", "--env", "dev"]);
    const key = server.key("sdk", "dev");
    const first = client(server, key, { bootstrapFile });
    await first.ready(MOMENT);
    first.saveBootstrap();
    await first.close();
    await server.stop();
    const offline = client(server, key, { bootstrapFile, backoff: { initial: 200, maximum: 1000 } });
    assert.equal(offline.status, "stale", "started from the file, not yet connected");
    assert.equal(offline.getBoolean("ui.new_feature", {}, false), true, "the file's state answers");
    await server.launch(server.address);
    await offline.ready(MOMENT);
    await offline.close();
  } finally {
    await server.close();
  }
});

test("evaluations and reported errors are counted per variant and reach the server", async () => {
  const server = await Server.start();
  try {
    server.cli(["define", "ui.new_feature"]);
    server.cli(["enable", "ui.new_feature", "--env", "dev"]);
    server.cli(["set", "ui.new_feature", "--env", "dev", "--rollout", "30"]);
    const vexil = client(server, server.key("sdk", "dev"), { metricsInterval: 3_600_000 });
    await vexil.ready(MOMENT);
    const expected = {};
    for (let user = 0; user < 400; user++) {
      const context = { targetingKey: `user-${user}` };
      const served = String(vexil.getBoolean("ui.new_feature", context, false));
      expected[served] ??= { evaluations: 0, errors: 0 };
      expected[served].evaluations += 1;
      if (served === "true" && user % 4 === 0) {
        assert.ok(vexil.reportError("ui.new_feature", context));
        expected[served].errors += 1;
      }
    }
    assert.ok(expected.true.evaluations > 60 && expected.false.evaluations > 200, JSON.stringify(expected));
    await vexil.flushMetrics();
    const response = await fetch(`${server.url}/api/flags/ui.new_feature/environments/dev/metrics?since=10m`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const totals = (await response.json()).totals;
    for (const label of ["true", "false"]) {
      assert.deepEqual([totals[label].evaluations, totals[label].errors], [expected[label].evaluations, expected[label].errors], label);
    }
    await vexil.close();
  } finally {
    await server.close();
  }
});

test("a key of another environment, and a client-side key, are refused and the client says why", async () => {
  const server = await Server.start();
  try {
    const prodKey = server.key("sdk", "prod");
    const wrong = client(server, prodKey);
    await assert.rejects(wrong.ready(MOMENT), /scoped to prod; it cannot read dev/);
    assert.equal(wrong.status, "closed");
    const browserKey = server.key("client", "dev");
    const refused = client(server, browserKey);
    await assert.rejects(refused.ready(MOMENT), /client-side key/);
    await wrong.close();
    await refused.close();
  } finally {
    await server.close();
  }
});

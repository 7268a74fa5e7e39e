// The OpenFeature provider under the official @openfeature/server-sdk: the SDK's own status, events and error codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode, OpenFeature, ProviderEvents, ProviderStatus } from "@openfeature/server-sdk";
import { VexilProvider } from "../dist/openfeature.js";
import { MOMENT, Server, next } from "../../../test-support/server.mjs";

test("the provider is ready, answers with reasons, variants and error codes, and emits changes, stale and ready", async () => {
  const server = await Server.start();
  try {
    server.cli(["define", "ui.new_feature"]);
    server.cli(["define", "backend.rag_max_results", "--type", "number", "--default", "5"]);
    server.cli(["set", "backend.rag_max_results", "--env", "staging", "--value", "20", "--enabled", "true"]);
    const provider = new VexilProvider({
      url: server.url, sdkKey: server.key("sdk", "staging"), environment: "staging", env: { FF_UI_DARK_MODE: "on" }, dotenvPath: false,
      metricsInterval: false, backoff: { initial: 200, maximum: 1000 },
    });
    await OpenFeature.setProviderAndWait("vexil-test", provider);
    const client = OpenFeature.getClient("vexil-test");
    assert.equal(client.providerStatus, ProviderStatus.READY);

    const number = await client.getNumberDetails("backend.rag_max_results", 0, { targetingKey: "u1" });
    assert.deepEqual([number.value, number.reason, number.variant, number.errorCode], [20, "STATIC", undefined, undefined]);
    assert.equal(number.flagMetadata.source, "stored_state");
    const override = await client.getBooleanDetails("ui.dark_mode", false);
    assert.deepEqual([override.value, override.reason, override.flagMetadata.source], [true, "STATIC", "environment_variable"]);
    const missing = await client.getBooleanDetails("ui.nothing_here", true);
    assert.deepEqual([missing.value, missing.reason, missing.errorCode], [true, "ERROR", ErrorCode.FLAG_NOT_FOUND]);
    const wrongType = await client.getStringDetails("backend.rag_max_results", "x");
    assert.deepEqual([wrongType.value, wrongType.errorCode], ["x", ErrorCode.TYPE_MISMATCH]);
    assert.match(wrongType.errorMessage, /is a number flag, read as string/);

    const changed = next((listener) => {
      client.addHandler(ProviderEvents.ConfigurationChanged, listener);
      return () => client.removeHandler(ProviderEvents.ConfigurationChanged, listener);
    }, "ConfigurationChanged");
    server.cli(["enable", "ui.new_feature", "--env", "staging", "--reason", "launch", "--yes"]);
    assert.deepEqual((await changed).flagsChanged, ["ui.new_feature"]);
    assert.equal(await client.getBooleanValue("ui.new_feature", false), true);

    const stale = next((listener) => {
      client.addHandler(ProviderEvents.Stale, listener);
      return () => client.removeHandler(ProviderEvents.Stale, listener);
    }, "Stale");
    await server.stop();
    await stale;
    assert.equal(client.providerStatus, ProviderStatus.STALE);
    const ready = next((listener) => {
      client.addHandler(ProviderEvents.Ready, listener);
      return () => client.removeHandler(ProviderEvents.Ready, listener);
    }, "Ready again", MOMENT);
    await server.launch(server.address);
    await ready;
    assert.equal(client.providerStatus, ProviderStatus.READY);
    await OpenFeature.clearProviders();
  } finally {
    await server.close();
  }
});

test("a provider whose key is refused ends in ERROR with the server's reason", async () => {
  const server = await Server.start();
  try {
    const provider = new VexilProvider({
      url: server.url, sdkKey: "vxs_not_a_key", environment: "dev", env: {}, dotenvPath: false, metricsInterval: false, readyTimeout: MOMENT,
    });
    await assert.rejects(OpenFeature.setProviderAndWait("refused", provider), /401|unknown or revoked/);
    const client = OpenFeature.getClient("refused");
    assert.equal(client.providerStatus, ProviderStatus.ERROR);
    const details = await client.getBooleanDetails("ui.new_feature", true);
    assert.deepEqual([details.value, details.errorCode], [true, ErrorCode.PROVIDER_NOT_READY]);
    await OpenFeature.clearProviders();
  } finally {
    await server.close();
  }
});

// A React component in headless Chromium, on another origin, with a client-side key: a change made with the CLI
// re-renders it without a reload; a reload with the server down answers from localStorage; a hidden tab closes its
// stream and catches up when shown; the page's evaluations reach the guard's totals with sendBeacon.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { renderToString } from "react-dom/server";
import { createElement } from "react";
import { VexilProvider, VexilBrowserClient, useFlag } from "../dist/index.js";
import { ADMIN_TOKEN, Server, eventually } from "../../../test-support/server.mjs";
import { launchBrowser, pageEventually, servePages } from "../../../test-support/browser.mjs";

let server;
let pages;
let browser;
let key;

before(async () => {
  // Every evaluation counts, not one network's share of them (guard_client_networks): the beacon test reads the
  // page's own totals, and every page here comes from 127.0.0.1.
  server = await Server.start({ config: "guard_client_networks = 0\n" });
  server.cli(["define", "ui.new_feature"]);
  server.cli(["define", "ui.theme", "--type", "string", "--default", "light"]);
  pages = await servePages();
  // The key admits the test pages' origin only (and a decoy), as a production key would.
  key = server.key("client", "dev", ["--origin", pages.origin]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await pages?.close();
  await server?.close();
});

async function open(query = "") {
  const page = await browser.newPage();
  await page.goto(`${pages.origin}/?server=${encodeURIComponent(server.url)}&key=${key}${query}`);
  return page;
}

test("a CLI change re-renders the component without a reload", async () => {
  const page = await open();
  await pageEventually(page, () => document.getElementById("status")?.textContent === "ready", "the page is ready");
  assert.equal(await page.$eval("#enabled", (node) => node.textContent), "false");
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "true", "the component shows the change");
  server.cli(["set", "ui.theme", "--env", "dev", "--enabled", "true", "--value", "dark"]);
  await pageEventually(page, () => document.getElementById("theme").textContent === "dark", "and the next one");
  const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
  assert.equal(navigations, 1, "no reload");
  server.cli(["disable", "ui.new_feature", "--env", "dev"]);
  server.cli(["disable", "ui.theme", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "false" && document.getElementById("theme").textContent === "light", "back");
  await page.close();
});

test("reloaded while the server is down, the page answers from localStorage and says it is stale", async () => {
  const page = await open();
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "true", "the page has the flag");
  await server.stop();
  await page.reload();
  await pageEventually(page, () => document.getElementById("enabled")?.textContent === "true", "the kept answer");
  assert.equal(await page.$eval("#status", (node) => node.textContent), "stale");
  await server.launch(server.address);
  await pageEventually(page, () => document.getElementById("status").textContent === "ready", "ready once the server is back");
  server.cli(["disable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "false", "and live again");
  await page.close();
});

test("a hidden tab closes its stream and catches up when shown", async () => {
  const page = await open("&inactivity=0");
  await pageEventually(page, () => document.getElementById("status").textContent === "ready", "ready");
  const hide = (hidden) =>
    page.evaluate((hidden) => {
      Object.defineProperty(document, "visibilityState", { value: hidden ? "hidden" : "visible", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
  await hide(true);
  await pageEventually(page, () => window.vexilTest.client.streamStatus === "paused", "the stream is closed while hidden");
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  // Nothing can reach a hidden tab now; shown again, it fetches at once.
  await hide(false);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "true", "caught up when shown");
  await pageEventually(page, () => window.vexilTest.client.streamStatus === "open", "the stream is open again");
  server.cli(["disable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "false", "and live");
  await page.close();
});

test("the page's evaluations reach the server as metrics when it goes away (sendBeacon)", async () => {
  server.cli(["set", "ui.theme", "--env", "dev", "--enabled", "true", "--value", "dark"]);
  const page = await open();
  await pageEventually(page, () => document.getElementById("theme").textContent === "dark", "the page shows the flag");
  const evaluated = await page.evaluate(() => {
    const client = window.vexilTest.client;
    for (let index = 0; index < 25; index++) client.getString("ui.theme", "light");
    client.reportError("ui.theme");
    return true;
  });
  assert.ok(evaluated);
  await page.close({ runBeforeUnload: true });
  const totals = async () => {
    const response = await fetch(`${server.url}/api/flags/ui.theme/environments/dev/metrics?since=10m`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return (await response.json()).totals?.["(value)"];
  };
  const counted = await eventually(async () => {
    const found = await totals();
    return found?.errors === 1 ? found : undefined;
  }, "the beacon's counts are in the server's totals");
  assert.ok(counted.evaluations >= 25, JSON.stringify(counted));
  assert.equal(counted.errors, 1);
});

test("a developer override from the query string is kept until cleared, and only when the page allows it", async () => {
  const allowed = await open("&dev=1&vexil=ui.new_feature:true");
  await pageEventually(allowed, () => document.getElementById("enabled").textContent === "true", "overridden");
  await allowed.goto(`${pages.origin}/?server=${encodeURIComponent(server.url)}&key=${key}&dev=1`);
  await pageEventually(allowed, () => document.getElementById("enabled")?.textContent === "true", "kept in localStorage");
  await allowed.goto(`${pages.origin}/?server=${encodeURIComponent(server.url)}&key=${key}&dev=1&vexil=`);
  await pageEventually(allowed, () => document.getElementById("status")?.textContent === "ready" && document.getElementById("enabled").textContent === "false", "cleared");
  await allowed.close();
  const refused = await open("&vexil=ui.new_feature:true");
  await pageEventually(refused, () => document.getElementById("status")?.textContent === "ready", "ready");
  assert.equal(await refused.$eval("#enabled", (node) => node.textContent), "false", "a link cannot switch flags on a page that does not allow it");
  await refused.close();
});

test("a provider that makes its own client works under StrictMode: one stream, ready, live", async () => {
  const page = await open("&mode=strict");
  await pageEventually(page, () => document.getElementById("status")?.textContent === "ready", "ready, not closed by StrictMode's second effect");
  server.cli(["enable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "true", "live");
  const streams = await page.evaluate(() => window.vexilTest.fetches.filter((url) => url.includes("/ofrep/v1/events")).length);
  assert.equal(streams, 1, "the client thrown away by StrictMode's second render opened nothing");
  assert.equal(await page.$eval("#status", (node) => node.textContent), "ready");
  server.cli(["disable", "ui.new_feature", "--env", "dev"]);
  await pageEventually(page, () => document.getElementById("enabled").textContent === "false", "and back");
  await page.close();
});

test("rendered on the server from a bootstrap, the markup is the flags' and nothing is fetched", async () => {
  const client = new VexilBrowserClient({ url: server.url, clientKey: key, bootstrap: { "ui.new_feature": true }, fetch: () => { throw new Error("no fetch during SSR"); } });
  function Banner() {
    return createElement("p", null, useFlag("ui.new_feature", false) ? "new" : "old");
  }
  const html = renderToString(createElement(VexilProvider, { client }, createElement(Banner)));
  assert.equal(html, "<p>new</p>");
  assert.equal(client.status, "stale");
});

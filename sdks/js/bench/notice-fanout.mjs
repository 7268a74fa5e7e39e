// What one change costs with change notices and conditional re-fetches, the design the browser client uses: N
// clients (VexilBrowserClient, in Node), each with its own context and a client-side key, follow the notices; a CLI
// write is made; measured until every client has answered its re-fetch: how long, and what went over the wire
// (200s with a body vs bodyless 304s). Two writes: one that serves nobody anything new (a disabled flag's value), one
// that changes every client's answer. Not a test: `npm run build && node bench/notice-fanout.mjs [clients]`.
import { VexilBrowserClient } from "../packages/browser/dist/index.js";
import { Server } from "../test-support/server.mjs";

const clients = Number(process.argv[2] ?? 400);
const server = await Server.start();
for (let index = 0; index < 100; index++) server.cli(["define", `ui.flag_${index}`]);
server.cli(["define", "ui.new_feature"]);
server.cli(["define", "ui.other"]);
const key = server.key("client", "dev");

const wire = { ok: 0, notModified: 0, bytes: 0 };
let settled = 0;
let expected = 0;
let allDone;
const counting = async (url, init) => {
  const response = await fetch(url, init);
  if (!String(url).includes("/ofrep/v1/evaluate/flags")) return response;
  const body = await response.arrayBuffer();
  if (response.status === 304) wire.notModified += 1;
  else wire.ok += 1;
  wire.bytes += body.byteLength;
  settled += 1;
  if (settled === expected) allDone?.();
  return new Response(response.status === 304 ? null : body, { status: response.status, headers: response.headers });
};
const readers = [];
for (let index = 0; index < clients; index++) {
  const client = new VexilBrowserClient({
    url: server.url, clientKey: key, context: { targetingKey: `user-${index}` }, connect: true, storage: false, metricsInterval: false, fetch: counting,
  });
  readers.push(client);
}
await Promise.all(readers.map((client) => client.ready(30_000)));
// Every stream is open and has had its opening notice answered.
await new Promise((resolve) => {
  const check = () => (readers.every((client) => client.streamStatus === "open") && settled >= clients * 2 ? resolve() : setTimeout(check, 20));
  check();
});

async function measure(label, args) {
  Object.assign(wire, { ok: 0, notModified: 0, bytes: 0 });
  settled = 0;
  expected = clients;
  const done = new Promise((resolve) => (allDone = resolve));
  const started = performance.now();
  server.cli(args);
  await done;
  const elapsed = performance.now() - started;
  console.log(
    `${label.padEnd(52)} ${elapsed.toFixed(0).padStart(5)} ms until all ${clients} re-fetched · ${wire.ok} × 200, ${wire.notModified} × 304, ${(wire.bytes / 1024).toFixed(0)} KiB of bodies`,
  );
}

console.log(`${clients} clients, 102 flags, node ${process.version}`);
await measure("a change that serves nobody anything new", ["set", "ui.other", "--env", "dev", "--value", "false"]);
await measure("a change that every client's answer reflects", ["enable", "ui.new_feature", "--env", "dev"]);
for (const client of readers) client.close();
await server.close();

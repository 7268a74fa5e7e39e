// Time from a CLI write (`vexil enable|disable ui.new_feature --env dev`) to the React component showing it in headless
// Chromium: the page on another origin, a client-side key, change notices and a conditional re-fetch. Measured from
// just before the CLI process is started (so its start-up, ~10 ms, is included) to the component's commit
// (useEffect), on one machine's clock. Not a test: `npm run build && node bench/render-latency.mjs [rounds]` from sdks/js.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Server, ADMIN_TOKEN, vexilBinary } from "../test-support/server.mjs";
import { launchBrowser, pageEventually, servePages } from "../test-support/browser.mjs";

const run = promisify(execFile);
const rounds = Number(process.argv[2] ?? 200);
const server = await Server.start();
server.cli(["define", "ui.new_feature"]);
server.cli(["define", "ui.theme", "--type", "string", "--default", "light"]);
const pages = await servePages();
const key = server.key("client", "dev", ["--origin", pages.origin]);
const browser = await launchBrowser();
const page = await browser.newPage();
await page.goto(`${pages.origin}/?server=${encodeURIComponent(server.url)}&key=${key}`);
await pageEventually(page, () => document.getElementById("status")?.textContent === "ready", "ready");

const latencies = [];
const cli = [];
for (let round = 0; round < rounds; round++) {
  const wanted = round % 2 === 0;
  // The page resolves with the wall-clock time of the first commit that shows the new value.
  const rendered = page.evaluate(
    (wanted) =>
      new Promise((resolve) => {
        const check = () => {
          const last = window.vexilTest.renders.at(-1);
          if (last?.enabled === wanted) resolve(performance.timeOrigin + last.at);
          else requestAnimationFrame(check);
        };
        check();
      }),
    wanted,
  );
  const started = performance.timeOrigin + performance.now();
  await run(vexilBinary(), [wanted ? "enable" : "disable", "ui.new_feature", "--env", "dev"], {
    env: { ...process.env, VEXIL_SERVER: server.url, VEXIL_TOKEN: ADMIN_TOKEN },
  });
  cli.push(performance.timeOrigin + performance.now() - started);
  latencies.push((await rendered) - started);
}
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))];
const line = (label, values) =>
  console.log(`${label.padEnd(44)} p50 ${percentile(values, 50).toFixed(1).padStart(6)} ms   p99 ${percentile(values, 99).toFixed(1).padStart(6)} ms   max ${Math.max(...values).toFixed(1).padStart(6)} ms`);
console.log(`${rounds} writes, ${(await browser.version())}, node ${process.version}`);
line("CLI write → component re-rendered", latencies);
line("the CLI process alone (start, request, exit)", cli);
await browser.close();
await pages.close();
await server.close();

// Evaluation through the Node client's getters (what an application calls): the flag look-up, the override check,
// the engine and the metrics count, for a plain flag and a 50/50 split over distinct users. Not a test:
// `npm run build && node bench/node-eval.mjs` from sdks/js.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VexilClient } from "../packages/node/dist/index.js";
import { compile } from "../packages/core/dist/index.js";

const state = (extra) => ({ enabled: true, serve: { value: true }, version: 1, updated_by: "a", updated_at: "2026-01-01T00:00:00Z", ...extra });
const split = { buckets: [{ serve: { value: true }, weight: 50000 }, { serve: { value: false }, weight: 50000 }] };
const flags = [
  { definition: { name: "ui.plain", type: "boolean", default: false }, state: state({}) },
  { definition: { name: "ui.split", type: "boolean", default: false }, state: state({ split }) },
];
const directory = mkdtempSync(join(tmpdir(), "vexil-bench-"));
const bootstrapFile = join(directory, "flags.json");
writeFileSync(bootstrapFile, JSON.stringify({ version: 1, environment: "prod", revision: 1, flags }));
// Nothing listens on port 9: the client answers from the bootstrap, as it would from the stream. Metrics are counted
// (the interval is long, so nothing is sent while timing).
const client = new VexilClient({
  url: "http://127.0.0.1:9", sdkKey: "vxs_bench", environment: "prod", env: {}, dotenvPath: false, bootstrapFile,
  metricsInterval: 3_600_000, backoff: { initial: 3_600_000 },
});

const CONTEXTS = Array.from({ length: 1 << 16 }, (_, index) => ({ targetingKey: `user-${index * 7919}`, plan: "pro" }));
const MASK = CONTEXTS.length - 1;
const engine = { plain: compile(flags[0].definition, flags[0].state), split: compile(flags[1].definition, flags[1].state) };
const cases = {
  "engine, plain flag (CompiledFlag.evaluate)": (index) => engine.plain.evaluate(CONTEXTS[index & MASK]).value,
  "engine, 50/50 split": (index) => engine.split.evaluate(CONTEXTS[index & MASK]).value,
  "client.getBoolean, plain flag": (index) => client.getBoolean("ui.plain", CONTEXTS[index & MASK], false),
  "client.getBoolean, 50/50 split": (index) => client.getBoolean("ui.split", CONTEXTS[index & MASK], false),
};

function time(read, iterations) {
  let served = 0;
  const start = process.hrtime.bigint();
  for (let index = 0; index < iterations; index++) if (read(index) === true) served++;
  const elapsed = Number(process.hrtime.bigint() - start);
  return { ns: elapsed / iterations, served };
}

const ITERATIONS = 5_000_000;
console.log(`node ${process.version}, ${ITERATIONS.toLocaleString("en")} evaluations per round, best of 5 (ns per evaluation)`);
for (const [label, read] of Object.entries(cases)) {
  time(read, 1_000_000);
  let best = Infinity;
  for (let round = 0; round < 5; round++) best = Math.min(best, time(read, ITERATIONS).ns);
  console.log(`${label.padEnd(46)} ${best.toFixed(1).padStart(7)}`);
}
await client.close();

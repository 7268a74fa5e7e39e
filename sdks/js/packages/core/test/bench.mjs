// Times CompiledFlag.evaluate: a plain enabled flag, a disabled one, and a 50/50 split over distinct
// targeting keys. Not a test: run `npm run build && node packages/core/test/bench.mjs` from sdks/js.
import { compile } from "../dist/index.js";

const definition = { name: "ui.new_feature", type: "boolean", default: false };
const cases = {
  "plain (enabled, no targeting)": compile(definition, { enabled: true, serve: { value: true } }),
  "disabled": compile(definition, { enabled: false, serve: { value: true } }),
  "50/50 split": compile(definition, {
    enabled: true,
    serve: { value: true },
    split: {
      buckets: [
        { serve: { value: true }, weight: 50000 },
        { serve: { value: false }, weight: 50000 },
      ],
    },
  }),
};

// Distinct contexts, built before timing so only evaluate() is measured.
const CONTEXTS = Array.from({ length: 1 << 16 }, (_, index) => ({ targetingKey: `user-${index * 7919}`, plan: "pro" }));
const MASK = CONTEXTS.length - 1;

/** Runs `iterations` evaluations and returns ns per evaluation; counts `true` answers so the work is kept. */
function run(flag, iterations) {
  let served = 0;
  const start = process.hrtime.bigint();
  for (let index = 0; index < iterations; index++) {
    if (flag.evaluate(CONTEXTS[index & MASK]).value === true) served++;
  }
  const elapsed = Number(process.hrtime.bigint() - start);
  if (served < 0) console.log(served);
  return { nsPerOp: elapsed / iterations, trueShare: served / iterations };
}

const WARM_UP = 2_000_000;
const ITERATIONS = 20_000_000;
const ROUNDS = 5;

console.log(`node ${process.version}, ${ITERATIONS.toLocaleString("en")} evaluations per round, best of ${ROUNDS}`);
for (const [label, flag] of Object.entries(cases)) {
  run(flag, WARM_UP);
  let best = Infinity;
  let share = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const { nsPerOp, trueShare } = run(flag, ITERATIONS);
    best = Math.min(best, nsPerOp);
    share = trueShare;
  }
  console.log(`${label.padEnd(32)} ${best.toFixed(1).padStart(7)} ns/op   (true ${(share * 100).toFixed(1)} %)`);
}

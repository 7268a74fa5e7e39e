// The entry of `vexil-flags` (bin/vexil-flags.js loads it): see commands.ts.
import { main } from "./commands.js";

await main();

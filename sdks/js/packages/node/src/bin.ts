#!/usr/bin/env node
// `vexil-flags promote|disable|enable …`: the seed's `npm run flags:…` commands (see commands.ts).
import { main } from "./commands.js";

await main();

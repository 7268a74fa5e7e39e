#!/usr/bin/env node
// `vexil-flags promote|disable|enable …`: the seed's `npm run flags:…` commands (src/commands.ts), from the built package.
await import("../dist/bin.js");

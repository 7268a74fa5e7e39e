// The seed application's Node service: flags evaluated in the process from the live stream (server-side SDK key),
// and a page whose React app follows its user's flags live (client-side key), rendered with them from the start.
//
//   VEXIL_URL=http://localhost:7070 VEXIL_ENV=dev VEXIL_SDK_KEY=vxs_… VEXIL_CLIENT_KEY=vxc_… npm start
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { VexilClient } from "@vexil/node";

import { featureFlagDefaults, flag, type FlagName } from "./featureFlags.js";

const required = (name: string): string => {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`set ${name} (see README.md)`);
  return value;
};
const url = required("VEXIL_URL");
const environment = process.env.VEXIL_ENV ?? "dev";
const clientKey = required("VEXIL_CLIENT_KEY");
const vexil = new VexilClient({ url, sdkKey: required("VEXIL_SDK_KEY"), environment, defaults: featureFlagDefaults });
const bundle = new URL("./web/app.js", import.meta.url);

/** What one user is served, through the generated typed accessor. */
function flagsFor(user: string): Record<FlagName, unknown> {
  const reader = vexil.forContext({ targetingKey: user });
  return {
    "ui.new_feature": flag(reader, "ui.new_feature"),
    "ui.problem_feature": flag(reader, "ui.problem_feature"),
    "experiment.voice_v2": flag(reader, "experiment.voice_v2"),
    "backend.rag_max_results": flag(reader, "backend.rag_max_results"),
  };
}

const server = createServer((request, response) => {
  const address = new URL(request.url ?? "/", "http://service");
  const user = address.searchParams.get("user") ?? "user-1";
  if (address.pathname === "/api/flags") {
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ user, status: vexil.status, flags: flagsFor(user) }));
  } else if (address.pathname === "/app.js") {
    response.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(bundle));
  } else if (address.pathname === "/") {
    // The page starts from what this service evaluated for the user (no flash of the wrong variant), then follows
    // the server live with the client-side key.
    const config = { url, clientKey, user, bootstrap: flagsFor(user) };
    const html = `<!doctype html><meta charset="utf-8"><title>seed app</title><div id="root"></div>
<script>window.__VEXIL__ = ${JSON.stringify(config).replaceAll("<", "\\u003c")}</script><script type="module" src="/app.js"></script>`;
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
  } else {
    response.writeHead(404).end("not found");
  }
});

await vexil.ready().catch((error: Error) => console.error(`vexil: ${error.message}; answering from defaults until it connects`));
server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  const where = server.address();
  console.log(`seed app: listening on http://127.0.0.1:${typeof where === "object" && where !== null ? where.port : ""}`);
});

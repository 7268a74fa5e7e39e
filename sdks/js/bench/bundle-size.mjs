// The size an application pays for the browser client: @vexil/core and @vexil/browser bundled, minified and gzipped,
// for the import most pages make, and with the React bindings. Not a test: `npm run build && node bench/bundle-size.mjs`.
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const entries = {
  "core + browser (VexilBrowserClient)": 'export { VexilBrowserClient } from "@vexil/browser";',
  "core + browser + react (VexilProvider, useFlag, …)": 'export * from "@vexil/react";',
  "core + browser OpenFeature provider": 'export { VexilWebProvider } from "@vexil/browser/openfeature";',
};
for (const [label, contents] of Object.entries(entries)) {
  const result = await esbuild.build({
    stdin: { contents, resolveDir: new URL("..", import.meta.url).pathname, loader: "js" },
    bundle: true, minify: true, format: "esm", write: false, target: "es2022", platform: "browser",
    external: ["react", "react-dom", "@openfeature/web-sdk"],
  });
  const code = result.outputFiles[0].contents;
  console.log(`${label.padEnd(52)} ${(code.length / 1024).toFixed(1).padStart(6)} KiB min  ${(gzipSync(code, { level: 9 }).length / 1024).toFixed(2).padStart(6)} KiB min+gzip`);
}

// Test support for the browser packages: test pages bundled with esbuild (React included) and served from their own
// origin, and headless Chromium (the Debian package) driven with puppeteer-core.
import { createServer } from "node:http";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import puppeteer from "puppeteer-core";

const pages = fileURLToPath(new URL("./pages/", import.meta.url));

/** Bundles the test pages (`pages/*.jsx`) into a directory and serves it with `pages/index.html`; returns its origin. */
export async function servePages() {
  const out = mkdtempSync(join(tmpdir(), "vexil-pages-"));
  await esbuild.build({
    entryPoints: [join(pages, "harness.jsx")],
    bundle: true,
    format: "esm",
    outdir: out,
    minify: false,
    // Development React: StrictMode runs effects twice there, as in `vite dev`.
    define: { "process.env.NODE_ENV": '"development"' },
    jsx: "automatic",
    logLevel: "error",
  });
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript" };
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://pages").pathname;
    const file = path === "/" ? join(pages, "index.html") : join(out, path.slice(1));
    try {
      const body = readFileSync(file);
      response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Headless Chromium. */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  return puppeteer.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Waits until `expression` (evaluated in the page) is truthy; its value. */
export async function pageEventually(page, expression, what, timeout = 10_000) {
  try {
    const handle = await page.waitForFunction(expression, { timeout, polling: "raf" });
    return handle.jsonValue();
  } catch (error) {
    const state = await page.evaluate(() => JSON.stringify(window.vexilTest?.state?.() ?? null)).catch(() => "unavailable");
    throw new Error(`not within ${timeout} ms: ${what} (page state: ${state}): ${error.message}`);
  }
}

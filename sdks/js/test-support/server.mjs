// Test support: the real `vexil serve` on a free port (the binary cargo built: VEXIL_BIN, else target/debug/vexil),
// its CLI, and waiting for things that should happen "within a moment".
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ADMIN_TOKEN = "vxl_test_admin_token_0123456789";
export const MOMENT = 10_000;

const repository = fileURLToPath(new URL("../../../", import.meta.url));

/** The vexil binary the tests run. */
export function vexilBinary() {
  const binary = process.env.VEXIL_BIN ?? join(repository, "target/debug/vexil");
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: build it first (cargo build -p vexil), or set VEXIL_BIN; scripts/test.sh does both`);
  }
  return binary;
}

/** A running server; `stop()` ends it (SIGTERM), `restart()` starts it again on the same address and data. */
export class Server {
  /** Starts a server on a new data directory (or `data`), with `config` (TOML) as its configuration file when given. */
  static async start({ data, bind = "127.0.0.1:0", config } = {}) {
    const directory = data === undefined || config !== undefined ? mkdtempSync(join(tmpdir(), "vexil-js-")) : undefined;
    const server = new Server(data ?? join(directory, "data"), directory);
    if (config !== undefined) {
      server.config = join(directory, "vexil.toml");
      writeFileSync(server.config, config);
    }
    await server.launch(bind);
    return server;
  }

  constructor(data, directory) {
    this.data = data;
    this.directory = directory;
  }

  async launch(bind) {
    const options = this.config === undefined ? [] : ["--config", this.config];
    const child = spawn(vexilBinary(), ["serve", "--bind", bind, "--data", this.data, ...options], {
      env: { ...process.env, VEXIL_BOOTSTRAP_TOKEN: ADMIN_TOKEN, VEXIL_BOOTSTRAP_PASSWORD: "correct horse battery", VEXIL_LOG: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.child = child;
    const lines = createInterface({ input: child.stdout });
    this.url = await new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`vexil serve exited with ${code} before listening`)));
      lines.on("line", (line) => {
        const found = /^vexil: listening on (\S+)/.exec(line);
        if (found) resolve(found[1]);
      });
    });
    this.address = new URL(this.url).host;
  }

  /** Runs `vexil <args>` against this server as the admin (or with `token`); returns stdout, throws on failure. */
  cli(args, { token = ADMIN_TOKEN } = {}) {
    return execFileSync(vexilBinary(), args, {
      env: { ...process.env, VEXIL_SERVER: this.url, VEXIL_TOKEN: token, NO_COLOR: "1" },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  }

  /** An SDK key (`--sdk`) or client-side key (`--client`) of `environment`. */
  key(kind, environment, extra = []) {
    return this.cli(["token", "create", `--${kind}`, "--env", environment, ...extra]).trim();
  }

  async stop() {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }

  async restart() {
    await this.stop();
    await this.launch(this.address);
  }

  async close() {
    await this.stop();
    if (this.directory !== undefined) rmSync(this.directory, { recursive: true, force: true });
  }
}

/** Waits until `check()` is truthy (polling every 10 ms), failing after `timeout` with `what`. */
export async function eventually(check, what, timeout = MOMENT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The next value a subscription gives, failing after `timeout`. */
export function next(subscribe, what, timeout = MOMENT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`not within ${timeout} ms: ${what}`));
    }, timeout);
    const unsubscribe = subscribe((value) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

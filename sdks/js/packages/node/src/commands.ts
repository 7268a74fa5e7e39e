/**
 * The seed's npm commands, as a bin projects call from their `package.json` scripts:
 *
 * ```json
 * "scripts": { "flags:promote": "vexil-flags promote", "flags:disable": "vexil-flags disable", "flags:enable": "vexil-flags enable" }
 * ```
 *
 * so that `npm run flags:promote ui.new_feature --from=dev --to=staging` and
 * `npm run flags:disable ui.problem_feature --env=prod --reason="Incident #123"` work exactly as the seed writes them.
 * npm (7 and later) keeps options it does not know for itself: `--from=dev` reaches a script as `npm_config_from`, `--env`
 * as `npm_config_env`, `--reason` as `npm_config_reason`, `--yes` as `npm_config_yes`, and `--to=staging` as
 * `npm_config_token_description` (npm expands `--to` to its own `--token-description`). Run by npm
 * (`npm_lifecycle_event` is set), the commands read them back; options given after `--` or to the bin directly win.
 *
 * The server and credentials are `VEXIL_SERVER` and `VEXIL_TOKEN`, else what `vexil login` saved.
 */

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";

/** The exit codes of the `vexil` CLI: done, failed, usage, refused by policy, not authenticated. */
export const EXIT = { done: 0, failed: 1, usage: 2, refused: 3, unauthenticated: 4 } as const;

/** A failure with the exit code it means. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** What the commands run with: the arguments, the environment, and where they write. */
export interface Invocation {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (line: string) => void;
  readonly interactive: boolean;
  readonly ask: (question: string) => Promise<string>;
  readonly fetch?: typeof fetch;
}

const USAGE = `usage:
  vexil-flags promote FLAG --from=ENV --to=ENV [--reason=TEXT] [--yes]
  vexil-flags disable FLAG --env=ENV [--reason=TEXT] [--yes]
  vexil-flags enable FLAG --env=ENV [--reason=TEXT] [--yes]
server and credentials: VEXIL_SERVER and VEXIL_TOKEN, else the login saved by \`vexil login\``;

/** Runs one command; returns the exit code. */
export async function run(invocation: Invocation): Promise<number> {
  try {
    await dispatch(invocation);
    return EXIT.done;
  } catch (error) {
    if (error instanceof CommandError) {
      invocation.out(`error: ${error.message}`);
      return error.code;
    }
    invocation.out(`error: ${(error as Error).message}`);
    return EXIT.failed;
  }
}

interface Options {
  readonly positional: string[];
  readonly named: Map<string, string>;
}

/** `--name=value`, `--name value` and `--flag` (true), after the positional arguments. */
function parse(argv: readonly string[]): Options {
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!;
    if (!argument.startsWith("--")) {
      positional.push(argument);
      continue;
    }
    const [name, value] = argument.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (value !== undefined) named.set(name, value);
    else if (name === "yes") named.set(name, "true");
    else if (index + 1 < argv.length && !argv[index + 1]!.startsWith("--")) named.set(name, argv[++index]!);
    else throw new CommandError(`--${name} needs a value\n${USAGE}`, EXIT.usage);
  }
  return { positional, named };
}

/** An option from the command line, else (under npm) from what npm kept of it. */
function option(options: Options, env: Invocation["env"], name: string, npmNames: readonly string[] = [name]): string | undefined {
  const given = options.named.get(name);
  if (given !== undefined) return given;
  if (env.npm_lifecycle_event === undefined) return undefined;
  for (const npmName of npmNames) {
    const value = env[`npm_config_${npmName}`];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

async function dispatch(invocation: Invocation): Promise<void> {
  const [command, ...rest] = invocation.argv;
  const options = parse(rest);
  const known = new Set(["from", "to", "env", "reason", "yes"]);
  for (const name of options.named.keys()) {
    if (!known.has(name)) throw new CommandError(`unknown option --${name}\n${USAGE}`, EXIT.usage);
  }
  if (options.positional.length !== 1) {
    throw new CommandError(`${command ?? "a command"} takes exactly one flag name (got ${options.positional.length})\n${USAGE}`, EXIT.usage);
  }
  const flag = options.positional[0]!;
  const env = invocation.env;
  const reason = option(options, env, "reason");
  const yes = option(options, env, "yes") === "true";
  const api = connect(invocation);
  switch (command) {
    case "promote": {
      const from = option(options, env, "from");
      const to = option(options, env, "to", ["to", "token_description"]);
      if (from === undefined || to === undefined) throw new CommandError(`promote needs --from and --to\n${USAGE}`, EXIT.usage);
      await promote(api, invocation, flag, from, to, reason, yes);
      return;
    }
    case "disable":
    case "enable": {
      const environment = option(options, env, "env");
      if (environment === undefined) throw new CommandError(`${command} needs --env\n${USAGE}`, EXIT.usage);
      await toggle(api, invocation, command, flag, environment, reason, yes);
      return;
    }
    default:
      throw new CommandError(`unknown command ${command === undefined ? "(none)" : `\`${command}\``}\n${USAGE}`, EXIT.usage);
  }
}

type Api = (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;

/** Requests to the server with the caller's credentials; refusals become the CLI's exit codes. */
function connect(invocation: Invocation): Api {
  const saved = savedLogin(invocation.env);
  const server = invocation.env.VEXIL_SERVER ?? saved.server;
  const token = invocation.env.VEXIL_TOKEN ?? saved.token;
  if (server === undefined) throw new CommandError("no server: set VEXIL_SERVER (http://localhost:7070) or log in with `vexil login --server URL`", EXIT.unauthenticated);
  if (token === undefined) throw new CommandError("no credentials: set VEXIL_TOKEN or log in with `vexil login`", EXIT.unauthenticated);
  const fetcher = invocation.fetch ?? globalThis.fetch.bind(globalThis);
  return async (method, path, body) => {
    let response: Response;
    try {
      response = await fetcher(new URL(path, server), {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new CommandError(`cannot reach ${server}: ${(error as Error).message}`, EXIT.failed);
    }
    const text = await response.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      // Not JSON: the status says what happened.
    }
    if (response.ok) return parsed;
    const error = parsed.error as { message?: string; code?: string } | undefined;
    const message = error?.message ?? `the server answered ${response.status}`;
    // The same table as the `vexil` CLI (crates/vexil/src/client.rs, Failure::exit_for).
    const policy = ["reason_required", "confirmation_required"].includes(error?.code ?? "");
    const code =
      response.status === 401
        ? EXIT.unauthenticated
        : response.status === 403 || policy
          ? EXIT.refused
          : [400, 404, 405, 422].includes(response.status) || error?.code === "promotion_order"
            ? EXIT.usage
            : EXIT.failed;
    throw new CommandError(message, code);
  };
}

/** `server` and `token` from the credentials `vexil login` saved, if any. */
function savedLogin(env: Invocation["env"]): { server?: string; token?: string } {
  const directory = env.VEXIL_CONFIG_DIR ?? (env.XDG_CONFIG_HOME ? join(env.XDG_CONFIG_HOME, "vexil") : join(env.HOME ?? homedir(), ".config", "vexil"));
  let text: string;
  try {
    text = readFileSync(join(directory, "credentials.toml"), "utf8");
  } catch {
    return {};
  }
  const found: { server?: string; token?: string } = {};
  for (const line of text.split("\n")) {
    const match = /^\s*(server|token)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(line);
    if (match) found[match[1] as "server" | "token"] = JSON.parse(`"${match[2]}"`) as string;
  }
  return found;
}

/** A protected environment's change needs a reason and a confirmation (typed, or `--yes` without a terminal). */
async function confirmProtected(
  invocation: Invocation,
  environment: string,
  what: string,
  reason: string | undefined,
  yes: boolean,
  confirmed: boolean,
): Promise<string> {
  let given = reason;
  if (given === undefined) {
    if (!invocation.interactive) {
      throw new CommandError(`${environment} is protected: ${what} needs a reason (--reason=…), and there is no terminal to ask on; nothing was changed`, EXIT.refused);
    }
    given = (await invocation.ask(`${environment} is protected; reason for this change: `)).trim();
    if (given === "") throw new CommandError(`${environment} is protected: a reason is required; nothing was changed`, EXIT.refused);
  }
  if (!yes && !confirmed) {
    if (!invocation.interactive) {
      throw new CommandError(`${environment} is protected: ${what} needs confirmation (--yes), and there is no terminal to ask on; nothing was changed`, EXIT.refused);
    }
    const answer = (await invocation.ask(`${what} in ${environment}? Type \`${environment}\` to confirm: `)).trim();
    if (answer !== environment) throw new CommandError("not confirmed; nothing was changed", EXIT.refused);
  }
  return given;
}

async function environmentOf(api: Api, name: string): Promise<{ key: string; protected: boolean }> {
  const listing = await api("GET", "/api/environments");
  const environments = (listing.environments ?? listing) as Array<{ key: string; name?: string; protected?: boolean }>;
  const found = environments.find((environment) => environment.key === name || environment.name === name);
  if (found === undefined) {
    throw new CommandError(`no environment \`${name}\`; there are ${environments.map((environment) => environment.key).join(", ")}`, EXIT.usage);
  }
  return { key: found.key, protected: found.protected === true };
}

async function promote(api: Api, invocation: Invocation, flag: string, from: string, to: string, reason: string | undefined, yes: boolean) {
  const path = `/api/flags/${encodeURIComponent(flag)}/promote`;
  const preview = await api("POST", path, { from, to, dry_run: true });
  const described = (preview.described as string[] | undefined) ?? [];
  if (described.length === 0) {
    invocation.out(`${flag}: ${preview.to} already serves what ${preview.from} serves; nothing to promote`);
    return;
  }
  invocation.out(`promoting ${flag} ${preview.from} → ${preview.to}:`);
  for (const line of described) invocation.out(`  ${line}`);
  const body: Record<string, unknown> = {
    from,
    to,
    expected_version: preview.target_version,
    expected_source_version: preview.source_version,
    expected_definition_version: preview.definition_version,
  };
  if (preview.protected === true) body.reason = await confirmProtected(invocation, String(preview.to), `promoting ${flag}`, reason, yes, false);
  else if (reason !== undefined) body.reason = reason;
  await api("POST", path, body);
  invocation.out(`✓ ${flag} promoted ${preview.from} → ${preview.to}`);
}

async function toggle(api: Api, invocation: Invocation, verb: "enable" | "disable", flag: string, name: string, reason: string | undefined, yes: boolean) {
  const environment = await environmentOf(api, name);
  let body: Record<string, unknown> = reason === undefined ? {} : { reason };
  if (environment.protected) {
    // The emergency path, as the CLI's: a disable with a reason runs at once.
    const emergency = verb === "disable" && reason !== undefined;
    body = { reason: await confirmProtected(invocation, environment.key, `${verb === "enable" ? "enabling" : "disabling"} ${flag}`, reason, yes, emergency) };
  }
  const state = await api("POST", `/api/flags/${encodeURIComponent(flag)}/environments/${environment.key}/${verb}`, body);
  const summary = typeof state.summary === "string" ? state.summary : `${verb}d`;
  if (state.changed === false) invocation.out(`${flag} in ${environment.key}: already ${summary}; nothing changed`);
  else invocation.out(`✓ ${flag} ${verb}d in ${environment.key} (${summary})`);
}

/** The bin's entry: the process's arguments and environment, a prompt on the terminal. */
export async function main(): Promise<void> {
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const code = await run({
    argv: process.argv.slice(2),
    env: process.env,
    out: (line) => (line.startsWith("error:") ? process.stderr : process.stdout).write(`${line}\n`),
    interactive,
    ask: async (question) => {
      const prompt = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await prompt.question(question);
      } finally {
        prompt.close();
      }
    },
  });
  process.exitCode = code;
}

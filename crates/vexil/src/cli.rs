//! The command line as typed: clap definitions only. `main` turns these into calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Vexil: feature flags across development, staging and production.
#[derive(Debug, Parser)]
#[command(name = "vexil", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every client command takes. Shown once, in `vexil --help` ([`GLOBAL_HELP`]), not in every command's help.
#[derive(Debug, Args)]
pub struct Global {
    /// Server address [default: what `vexil login` saved, else http://127.0.0.1:7070].
    #[arg(long, env = "VEXIL_SERVER", global = true, hide = true)]
    pub server: Option<String>,
    /// API token [default: what `vexil login` saved].
    #[arg(long, env = "VEXIL_TOKEN", global = true, hide = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text, global = true, hide = true)]
    pub output: Output,
}

/// The global options, once, at the end of `vexil --help`.
pub const GLOBAL_HELP: &str = "\
Global options (for every command):
  --server <URL>      Server address [env: VEXIL_SERVER]
                      [default: what `vexil login` saved, else http://127.0.0.1:7070]
  --token <TOKEN>     API token [env: VEXIL_TOKEN] [default: what `vexil login` saved]
  -o, --output <FMT>  text (for people, the default) or json (for scripts);
                      under json a failure is {\"error\": {\"code\", \"message\"}} too

Exit codes: 0 done, 1 failed, 2 usage or unknown name, 3 refused by policy
(role, confirmation, reason), 4 not authenticated.
Colour on a terminal; none with NO_COLOR=1 or when piped.";

/// What every command's help ends with, instead of the global options again.
pub const COMMAND_HELP: &str = "Global options (--server, --token, -o/--output) and exit codes: see `vexil --help`.";

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts: the API's JSON.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded store in ./vexil-data, or Redis with --redis).
    Serve(ServeArgs),
    /// Log in with email and password and save the server and a token for later commands.
    Login(LoginArgs),
    /// Every flag in every environment (the environment switcher), or one environment's flags with --env.
    Flags(FlagsArgs),
    /// One flag: its state in every environment, or in detail with --env.
    Get(GetArgs),
    /// Define a new flag.
    Define(DefineArgs),
    /// Apply a flags.toml registry: create new flags, update metadata, report flags missing from the file.
    Apply(ApplyArgs),
    /// Write the registry as typed code: `vexil codegen --lang ts flags.toml > featureFlags.ts`.
    Codegen(CodegenArgs),
    /// Set a flag's state in one environment (value, variant, rollout, rules).
    Set(SetArgs),
    /// Enable flags in one environment.
    Enable(ToggleArgs),
    /// Disable flags in one environment (`--env=prod --reason=…` runs at once: the emergency path).
    Disable(ToggleArgs),
    /// Promote a flag's state to the next environment (dev → staging → prod).
    Promote(PromoteArgs),
    /// Copy flag states from one environment to another.
    Copy(CopyArgs),
    /// Print an environment's flag states as JSON.
    Export(ExportArgs),
    /// Import flag states written by `vexil export` into an environment.
    Import(ImportArgs),
    /// Read the audit trail, or verify its hash chain.
    Audit(AuditArgs),
    /// Follow an environment's changes live (the SSE stream).
    Watch(WatchArgs),
    /// Show how a flag resolves here: FF_ variable, .env.local, stored state, registry default, and which layer wins.
    Resolve(ResolveArgs),
    /// Manage users (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Roll a boolean flag out gradually: `rollout FLAG --env E --steps 10,25,50,100 --every 30m`, or status/pause/resume/abort.
    Rollout(RolloutArgs),
    /// Monitoring triggers: secret URLs that roll a flag back when a monitoring system calls them.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Undo the last change of a flag in one environment (restore the state before it).
    Rollback(RollbackArgs),
    /// Archive a flag: hidden from `vexil flags`, its states frozen (it must be off in protected environments).
    Archive(ArchiveArgs),
    /// Bring an archived flag back.
    Unarchive(ArchiveArgs),
    /// Print a shell completion script: `source <(vexil completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The flag.
    pub flag: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Show what would be restored and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The flag.
    pub flag: String,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long)]
    pub bind: Option<String>,
    /// Data directory of the embedded store [default: ./vexil-data]; with --redis, where the server records the
    /// deployment it joined (keep it across restarts).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep state in Redis instead (redis://HOST:PORT[/DB]); flag states at flags:<env>:<flag>.
    #[arg(long)]
    pub redis: Option<String>,
    /// Configuration file (TOML: bind, data, categories, [[environments]]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Begin a new deployment on an empty store even though this server belonged to another (after a wiped or replaced Redis).
    #[arg(long)]
    pub bootstrap: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your email [asked for when not given].
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from standard input instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct FlagsArgs {
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only flags with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only flags of this category.
    #[arg(long)]
    pub category: Option<String>,
    /// Include archived flags.
    #[arg(long)]
    pub archived: bool,
    /// Only flags whose name or description contains this.
    #[arg(long)]
    pub search: Option<String>,
    /// At most this many flags (all by default).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start after this flag: the cursor a previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The flag, such as ui.new_feature.
    pub flag: String,
    /// Show the state in this environment in detail.
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct DefineArgs {
    /// The flag's name: <category>.<snake_case>.
    pub flag: String,
    /// boolean, string, number or json.
    #[arg(long = "type", default_value = "boolean")]
    pub flag_type: String,
    /// The registry default (JSON, or plain text for string flags).
    #[arg(long)]
    pub default: Option<String>,
    /// What the flag does.
    #[arg(long)]
    pub description: Option<String>,
    /// Who owns it.
    #[arg(long)]
    pub owner: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// low, medium, high or critical.
    #[arg(long)]
    pub criticality: Option<String>,
    /// A variant as NAME=VALUE (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// For string flags: an allowed value (repeatable).
    #[arg(long = "allowed-value")]
    pub allowed_values: Vec<String>,
    /// For number flags: the minimum.
    #[arg(long)]
    pub min: Option<f64>,
    /// For number flags: the maximum.
    #[arg(long)]
    pub max: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CodegenArgs {
    /// The language: `ts` (TypeScript).
    #[arg(long, value_parser = ["ts"])]
    pub lang: String,
    /// The registry file.
    pub file: PathBuf,
    /// Write nothing; fail when this file is not what codegen would write (for CI).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The registry file.
    pub file: PathBuf,
    /// Archive flags that are on the server but not in the file.
    #[arg(long)]
    pub prune: bool,
    /// Show what would change without changing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Needed when a definition change alters what a protected environment serves (a served variant's value,
    /// a disabled flag's default): that is a change to that environment.
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct Confirm {
    /// Why (required for protected environments).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask for confirmation (needed without a terminal for protected environments).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The flag.
    pub flag: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Turn the flag on or off.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Serve this value (JSON, or plain text for string flags).
    #[arg(long, conflicts_with = "variant")]
    pub value: Option<String>,
    /// Serve this variant.
    #[arg(long)]
    pub variant: Option<String>,
    /// Serve `true` to this percentage of targeting keys (boolean flags; 0 to 100, three decimals at most).
    #[arg(long)]
    pub rollout: Option<f64>,
    /// Replace targets, rules and split from a JSON or TOML file ({"targets": […], "rules": […], "split": …}).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct ToggleArgs {
    /// The flags.
    #[arg(required_unless_present = "tag")]
    pub flags: Vec<String>,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Every flag with this tag instead of a list.
    #[arg(long, conflicts_with = "flags")]
    pub tag: Option<String>,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The flag.
    pub flag: String,
    /// Source environment.
    #[arg(long)]
    pub from: String,
    /// Target environment.
    #[arg(long)]
    pub to: String,
    /// Allow skipping an environment in the promotion order.
    #[arg(long)]
    pub skip: bool,
    /// Promote as a gradual rollout with these growing percentages: 10,50,100 (boolean flags).
    #[arg(long, value_delimiter = ',', requires = "every")]
    pub rollout: Vec<f64>,
    /// With --rollout: the time between steps (4s, 30m, 2h, 1d).
    #[arg(long, requires = "rollout")]
    pub every: Option<String>,
    /// Show what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source environment.
    #[arg(long)]
    pub from: String,
    /// Target environment.
    #[arg(long)]
    pub to: String,
    /// Only these flags (all when none are given).
    pub flags: Vec<String>,
    /// Show the diff without copying.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The environment to import into.
    #[arg(long)]
    pub env: String,
    /// A file written by `vexil export` (- for standard input).
    pub file: PathBuf,
    /// Show the diff without importing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCommand>,
    /// Only this flag.
    #[arg(long)]
    pub flag: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this action (enable, disable, promote, …).
    #[arg(long)]
    pub action: Option<String>,
    /// Since a time: RFC 3339, a date, or an age (30m, 12h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Until a time.
    #[arg(long)]
    pub until: Option<String>,
    /// How many records per page (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Start after this point: the cursor a previous page printed.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Every matching record, page after page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Stop after this many changes (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The flag.
    pub flag: String,
    /// The environment the application runs in.
    #[arg(long)]
    pub env: String,
    /// Evaluate the stored state for this targeting key.
    #[arg(long = "key")]
    pub targeting_key: Option<String>,
    /// A context attribute as NAME=VALUE (JSON values, else text; repeatable).
    #[arg(long = "attr")]
    pub attributes: Vec<String>,
    /// The directory whose .env.local is read [default: the current directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain for tampering.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; prints a generated password unless --password-stdin is given.
    Add {
        /// Their email.
        email: String,
        /// viewer, developer or admin.
        #[arg(long)]
        role: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// At most this many (all by default).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this user: the cursor a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a user's role.
    SetRole {
        /// Their email.
        email: String,
        /// viewer, developer or admin.
        role: String,
        /// Confirm changing your own role (without a terminal to ask on).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Disable a user: their tokens stop working.
    Disable {
        /// Their email.
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Their email.
        email: String,
    },
    /// Set a user's password (yours, or anyone's as admin); it ends their other sessions and tokens.
    SetPassword {
        /// Their email.
        email: String,
        /// Read the new password from standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal API token, or with --sdk an SDK key (or with --client a client-side key) for one environment;
    /// prints only the token.
    #[command(group(clap::ArgGroup::new("key").args(["sdk", "client"])))]
    Create {
        /// Whose token (yourself by default; others need admin).
        #[arg(long, conflicts_with_all = ["sdk", "client"])]
        user: Option<String>,
        /// A label for it.
        #[arg(long)]
        name: Option<String>,
        /// Create a read-only SDK key (stream, evaluate, metrics) scoped to --env.
        #[arg(long, requires = "env", conflicts_with = "client")]
        sdk: bool,
        /// Create a client-side key for browsers and mobile apps, scoped to --env: it only evaluates flags for the
        /// context it sends (OFREP) and reports metrics; it never reads the stream (rules, targeting keys).
        #[arg(long, requires = "env")]
        client: bool,
        /// The environment of the key.
        #[arg(long, requires = "key")]
        env: Option<String>,
        /// With --client: a web origin whose pages may use the key (`https://app.example.com`); repeat for more.
        /// Pages of other origins are refused. Any origin when left out.
        #[arg(long = "origin", value_name = "ORIGIN", conflicts_with_all = ["sdk", "user"])]
        origins: Vec<String>,
    },
    /// List tokens and keys: personal tokens, SDK keys and client-side keys with their environment.
    List {
        /// At most this many (all by default).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this token: the cursor (an id) a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from `vexil token list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger for a flag in an environment; prints its secret URL (shown once).
    Create {
        /// The flag it rolls back.
        flag: String,
        /// The environment.
        #[arg(long)]
        env: String,
        /// A name shown in the audit trail.
        #[arg(long)]
        name: Option<String>,
        /// What firing does: `disable` (the kill switch) or `rollback` (restore the state before the last change,
        /// refused when that would serve more than now).
        #[arg(long, default_value = "disable", value_parser = ["disable", "rollback"])]
        action: String,
    },
    /// List triggers.
    List,
    /// Revoke a trigger by id.
    Revoke {
        /// The trigger's id (from `vexil trigger list`).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: Option<RolloutAction>,
    /// The flag (boolean).
    #[arg(required = true)]
    pub flag: Option<String>,
    /// The environment.
    #[arg(long, required = true)]
    pub env: Option<String>,
    /// Percentages, comma-separated and growing: 10,25,50,100.
    #[arg(long, required = true, value_delimiter = ',')]
    pub steps: Vec<f64>,
    /// Time between steps: 4s, 30m, 2h, 1d.
    #[arg(long, required = true)]
    pub every: Option<String>,
    #[command(flatten)]
    pub confirm: Confirm,
}

#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// Where a flag's rollout stands.
    Status(RolloutTarget),
    /// Stop taking steps until resumed.
    Pause(RolloutTarget),
    /// Take steps again (the next one after the interval).
    Resume(RolloutTarget),
    /// End the plan; the current percentage stays.
    Abort(RolloutTarget),
}

#[derive(Debug, Args)]
pub struct RolloutTarget {
    /// The flag.
    pub flag: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    #[command(flatten)]
    pub confirm: Confirm,
}

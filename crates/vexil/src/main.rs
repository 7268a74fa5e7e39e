//! `vexil`: the server (`vexil serve`) and the command line client (every other subcommand).
//!
//! This binary is glue: clap parses the command line ([`cli`]), each command calls the server over
//! HTTP ([`client`], [`commands`]) or runs it ([`serve`]), and the exit code is decided here, in one
//! place: 0 done, 1 failed, 2 usage error or unknown name, 3 refused by policy (role, confirmation, reason),
//! 4 not authenticated. Under `--output json` a failure is printed as `{"error": {"code", "message"}}` on
//! standard output, like any other answer.

mod cli;
mod client;
mod commands;
mod paint;
mod prompt;
mod registry;
mod render;
mod serve;
mod watch;

use clap::{CommandFactory, FromArgMatches};
use serde_json::json;

use crate::cli::{Cli, Command, Output};
use crate::client::{Client, CommandResult, Failure};
use crate::commands::Context;

/// The command line's definition: the derived one, with the global options and exit codes said once at the end of
/// `vexil --help`, and each command's help pointing there.
fn definition() -> clap::Command {
    fn pointing(command: clap::Command) -> clap::Command {
        command.after_help(cli::COMMAND_HELP).mut_subcommands(pointing)
    }
    Cli::command().after_help(cli::GLOBAL_HELP).mut_subcommands(pointing)
}

/// Whether the command line asks for JSON, read from the raw arguments (for failures clap has not parsed yet).
fn wants_json() -> bool {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.windows(2).any(|pair| (pair[0] == "-o" || pair[0] == "--output") && pair[1] == "json")
        || arguments.iter().any(|argument| argument == "--output=json" || argument == "-ojson" || argument == "-o=json")
}

/// Prints a failure: `error: …` on standard error, or under JSON the error object on standard output.
fn report(json: bool, code: &str, message: &str) {
    if json {
        println!("{}", json!({"error": {"code": code, "message": message}}));
    } else {
        eprintln!("{}: {message}", paint::error("error"));
    }
}

fn main() {
    // A reader that stops reading (`| head`) ends the output, not with a panic: println! on a closed pipe panics,
    // and that panic is turned into the quiet exit a pipe's writer gets everywhere else.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let parsed = definition().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            std::process::exit(0);
        }
        Err(error) if wants_json() => {
            // What clap says, up to the usage line: the error and its tip, joined on one line.
            let rendered = error.render().to_string();
            let said: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            report(true, "usage", said.join(" ").trim_start_matches("error: "));
            std::process::exit(2);
        }
        Err(error) => {
            let _ = error.print();
            std::process::exit(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VEXIL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(paint::stderr_allows_colour());
    // `VEXIL_LOG_FORMAT=json`: one JSON object per line (timestamp, level, target, fields), for log pipelines.
    match std::env::var("VEXIL_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Ok("") | Err(_) => logs.init(),
        Ok(other) => {
            eprintln!("error: VEXIL_LOG_FORMAT is `{other}`; accepted: text (the default), json");
            std::process::exit(2);
        }
    }
    let json = cli.global.output == Output::Json;
    let code = match run(cli) {
        Ok(()) => 0,
        Err(client::Failure::AlreadyDone(message)) => {
            eprintln!("{message}");
            0
        }
        Err(failure) => {
            report(json, failure.code(), &failure.to_string());
            failure.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> CommandResult {
    let saved = client::load_saved();
    let chosen = cli.global.server.clone().or(saved.server.clone());
    let server = chosen.clone().unwrap_or_else(|| commands::DEFAULT_SERVER.to_owned());
    let token = cli.global.token.clone().or(saved.token.clone());
    let context = || -> CommandResult<Context> { Ok(Context { client: Client::new(&server, token.clone())?, output: cli.global.output }) };
    match cli.command {
        Command::Serve(args) => serve::run(args).map_err(|error| Failure::Failed(format!("{error:#}"))),
        Command::Login(args) => commands::login(chosen.as_deref(), args),
        Command::Flags(args) => commands::flags(&context()?, args),
        Command::Get(args) => commands::get(&context()?, args),
        Command::Define(args) => commands::define(&context()?, args),
        Command::Apply(args) => commands::apply(&context()?, args),
        Command::Codegen(args) => registry::codegen(args),
        Command::Set(args) => commands::set(&context()?, args),
        Command::Enable(args) => commands::toggle(&context()?, args, true),
        Command::Disable(args) => commands::toggle(&context()?, args, false),
        Command::Promote(args) => commands::promote(&context()?, args),
        Command::Copy(args) => commands::copy(&context()?, args),
        Command::Export(args) => commands::export(&context()?, args),
        Command::Import(args) => commands::import(&context()?, args),
        Command::Audit(args) => commands::audit(&context()?, args),
        Command::Watch(args) => watch::watch(&context()?, args),
        Command::Resolve(args) => watch::resolve(&context()?, args),
        Command::User(command) => commands::user(&context()?, command),
        Command::Token(command) => commands::token(&context()?, command),
        Command::Trigger(command) => commands::trigger(&context()?, command),
        Command::Rollout(args) => commands::rollout(&context()?, args),
        Command::Rollback(args) => commands::rollback(&context()?, args),
        Command::Archive(args) => commands::archive(&context()?, args, true),
        Command::Unarchive(args) => commands::archive(&context()?, args, false),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut definition(), "vexil", &mut script);
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Ok(())
        }
    }
}

//! `vexil`: the server (`vexil serve`) and the command line client (every other subcommand).
//!
//! This binary is glue: clap parses the command line ([`cli`]), each command calls the server over
//! HTTP ([`client`], [`commands`]) or runs it ([`serve`]), and the exit code is decided here, in one
//! place: 0 done, 1 failed, 2 usage error, 3 refused by policy (permission, confirmation, reason).

mod cli;
mod client;
mod commands;
mod prompt;
mod registry;
mod render;
mod serve;
mod watch;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::client::{Client, CommandResult, Failure};
use crate::commands::Context;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VEXIL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    // `VEXIL_LOG_FORMAT=json`: one JSON object per line (timestamp, level, target, fields), for log pipelines.
    match std::env::var("VEXIL_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Ok("") | Err(_) => logs.init(),
        Ok(other) => {
            eprintln!("error: VEXIL_LOG_FORMAT is `{other}`; accepted: text (the default), json");
            std::process::exit(2);
        }
    }
    let code = match run(cli) {
        Ok(()) => 0,
        Err(client::Failure::AlreadyDone(message)) => {
            eprintln!("{message}");
            0
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> CommandResult {
    let saved = client::load_saved();
    let server = cli.global.server.clone().or(saved.server.clone()).unwrap_or_else(|| "http://127.0.0.1:7070".to_owned());
    let token = cli.global.token.clone().or(saved.token.clone());
    let context = || -> CommandResult<Context> { Ok(Context { client: Client::new(&server, token.clone())?, output: cli.global.output }) };
    match cli.command {
        Command::Serve(args) => serve::run(args).map_err(|error| Failure::Failed(format!("{error:#}"))),
        Command::Login(args) => commands::login(&server, args),
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
    }
}

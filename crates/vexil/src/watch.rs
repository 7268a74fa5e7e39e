//! `vexil watch` (follow an environment's stream) and `vexil resolve` (the override chain, as the SDK applies it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use vexil_core::overrides::{env_var_name, parse_dotenv, parse_override};
use vexil_core::{CompiledFlag, FlagDefinition, FlagName, FlagState};

use crate::cli::{Output, ResolveArgs, WatchArgs};
use crate::client::{CommandResult, Failure, segment};
use crate::commands::{Context, key};
use crate::render;

/// One server-sent event.
#[derive(Debug, Default)]
struct Event {
    id: Option<u64>,
    name: String,
    data: String,
}

/// Prints changes as they arrive; reconnects with `Last-Event-ID` when the connection drops.
pub fn watch(context: &Context, args: WatchArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let path = format!("/api/feature-flags/stream?env={}", key(&environment));
    let mut last_event_id = None;
    let mut changes = 0u64;
    let mut failures = 0u32;
    loop {
        let response = match context.client.open_stream(&path, last_event_id) {
            Ok(response) => response,
            Err(failure @ (Failure::Failed(_) | Failure::Api { exit: 1, .. })) if last_event_id.is_some() && failures < 5 => {
                let message = failure.to_string();
                failures += 1;
                eprintln!("stream interrupted ({message}); reconnecting");
                std::thread::sleep(std::time::Duration::from_secs(u64::from(failures)));
                continue;
            }
            Err(other) => return Err(other),
        };
        failures = 0;
        let mut event = Event::default();
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                let done = std::mem::take(&mut event);
                if done.id.is_some() {
                    last_event_id = done.id;
                }
                if show(context, &done)? {
                    changes += 1;
                    if args.count.is_some_and(|count| changes >= count) {
                        return Ok(());
                    }
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("id:") {
                event.id = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("event:") {
                event.name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        eprintln!("stream closed by the server; resuming");
    }
}

/// Prints one event; true when it was a change.
fn show(context: &Context, event: &Event) -> CommandResult<bool> {
    if event.data.is_empty() {
        return Ok(false);
    }
    let data: Value =
        serde_json::from_str(&event.data).map_err(|error| Failure::Failed(format!("the stream sent invalid JSON: {error}")))?;
    if context.output == Output::Json {
        println!("{}", json!({"event": event.name, "data": data}));
        return Ok(event.name == "change");
    }
    match event.name.as_str() {
        "snapshot" => println!(
            "watching {} at revision {} ({}); waiting for changes",
            data["environment"].as_str().unwrap_or("?"),
            data["revision"],
            render::count(data["flags"].as_array().map(Vec::len).unwrap_or(0), "flag")
        ),
        "change" => println!(
            "{}  revision {}  {}  {}  (by {})",
            data["state"]["updated_at"].as_str().unwrap_or("?"),
            data["revision"],
            data["flag"].as_str().unwrap_or("?"),
            render::marked(&data["state"], data["summary"].as_str()),
            data["state"]["updated_by"].as_str().unwrap_or("?")
        ),
        _ => {}
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    Ok(event.name == "change")
}

/// One layer of the override chain.
struct Layer {
    name: &'static str,
    value: Option<Value>,
    note: String,
}

/// Shows the chain an application in `--env` would apply here, and which layer wins.
pub fn resolve(context: &Context, args: ResolveArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let name = FlagName::parse(&args.flag).map_err(|error| Failure::Usage(error.message))?;
    let flag = context.client.get(&format!("/api/flags/{}", segment(name.as_str())))?.body;
    let definition: FlagDefinition =
        serde_json::from_value(flag.clone()).map_err(|error| Failure::Failed(format!("unexpected flag format: {error}")))?;
    let state: FlagState = serde_json::from_value(flag["environments"][key(&environment)].clone())
        .map_err(|error| Failure::Failed(format!("unexpected state format: {error}")))?;
    let variable = env_var_name(&name);
    let mut warnings = Vec::new();
    let mut parse_layer = |origin: &str, raw: Option<String>| -> (Option<Value>, String) {
        match raw {
            None => (None, "not set".to_owned()),
            Some(raw) => match parse_override(definition.flag_type, &raw) {
                Ok(value) => (Some(value), format!("{variable}={raw}")),
                Err(error) => {
                    warnings.push(format!("{variable} in {origin} is ignored: {}", error.message));
                    (None, format!("{variable}={raw} is invalid, ignored"))
                }
            },
        }
    };
    let (process_value, process_note) = parse_layer("the environment", std::env::var(&variable).ok());
    let directory = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dotenv = std::fs::read_to_string(directory.join(".env.local")).ok();
    let from_dotenv =
        dotenv.as_deref().and_then(|text| parse_dotenv(text).into_iter().rev().find(|(name, _)| name == &variable).map(|(_, value)| value));
    let (dotenv_value, mut dotenv_note) = parse_layer(".env.local", from_dotenv);
    if dotenv.is_none() {
        dotenv_note = format!("no .env.local in {}", directory.display());
    }
    let mut evaluation_context = Map::new();
    if let Some(targeting_key) = &args.targeting_key {
        evaluation_context.insert("targetingKey".into(), json!(targeting_key));
    }
    for attribute in &args.attributes {
        let (name, value) = attribute.split_once('=').ok_or_else(|| Failure::Usage(format!("--attr `{attribute}` must be NAME=VALUE")))?;
        evaluation_context.insert(name.to_owned(), serde_json::from_str(value).unwrap_or_else(|_| json!(value)));
    }
    let compiled = CompiledFlag::compile(&definition, &state);
    let evaluation = compiled.evaluate(&evaluation_context);
    // Which part of the state answered, in words: a person reads "rule 2", not TARGETING_MATCH.
    let why = match (evaluation.error, evaluation.matched) {
        (Some(vexil_core::evaluation::ErrorCode::TargetingKeyMissing), _) => {
            "a split chooses for everyone else and no targeting key was given (--key USER); the fallback is served".to_owned()
        }
        (None, vexil_core::evaluation::Matched::Disabled) => "the flag is off".to_owned(),
        (None, vexil_core::evaluation::Matched::Target) => "targeted individually".to_owned(),
        (None, vexil_core::evaluation::Matched::Rule(index)) => format!("rule {} matched", index + 1),
        (None, vexil_core::evaluation::Matched::Split) => "the split chose it for this key".to_owned(),
        (None, vexil_core::evaluation::Matched::Fallthrough) => "what everyone gets".to_owned(),
    };
    if evaluation.error.is_some() {
        warnings.push(format!("the stored state answers with an error for this context: {why}"));
    }
    let stored_note = format!("{} ({why}; {}, version {})", render::short(evaluation.value), evaluation.reason.as_str(), state.version);
    let layers = [
        Layer { name: "environment variable", value: process_value, note: process_note },
        Layer { name: ".env.local", value: dotenv_value, note: dotenv_note },
        Layer { name: "stored state", value: Some(evaluation.value.clone()), note: stored_note },
        Layer { name: "registry default", value: Some(definition.default.clone()), note: render::short(&definition.default) },
    ];
    let winner = layers.iter().position(|layer| layer.value.is_some()).unwrap_or(3);
    let sources = ["environment_variable", "dotenv_local", "stored_state", "registry_default"];
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    match context.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "flag": name.as_str(),
                "environment": key(&environment),
                "value": layers[winner].value,
                "source": sources[winner],
                "reason": evaluation.reason.as_str(),
                "warnings": warnings,
                "layers": layers.iter().zip(sources).map(|(layer, source)| json!({"source": source, "value": layer.value, "detail": layer.note})).collect::<Vec<_>>(),
            }))
            .unwrap_or_default()
        ),
        Output::Text => {
            println!("{name} in {}", key(&environment));
            for (index, layer) in layers.iter().enumerate() {
                let marker = if index == winner { "  ← wins" } else { "" };
                println!("  {}. {:<22} {}{marker}", index + 1, layer.name, layer.note);
            }
            println!("value: {}", render::short(layers[winner].value.as_ref().unwrap_or(&Value::Null)));
        }
    }
    Ok(())
}

//! The client commands: each reads its arguments, talks to the server, and prints the result.

use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{
    ApplyArgs, ArchiveArgs, AuditArgs, AuditCommand, CopyArgs, DefineArgs, ExportArgs, FlagsArgs, GetArgs, ImportArgs, LoginArgs, Output,
    PromoteArgs, RollbackArgs, SetArgs, ToggleArgs, TokenCommand, UserCommand,
};
use crate::client::{Client, CommandResult, Failure, Saved, segment};
use crate::{paint, prompt, render};

/// Where commands go when no server is given, saved or set.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// What every client command needs.
pub struct Context {
    /// The server connection.
    pub client: Client,
    /// Text or JSON.
    pub output: Output,
}

impl Context {
    fn print_json(&self, value: &Value) {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    }

    /// Finds an environment by key or long name, as the server lists them.
    pub fn environment(&self, input: &str) -> CommandResult<Value> {
        let environments = self.client.get("/api/environments")?.body;
        let wanted = input.trim().to_ascii_lowercase();
        environments
            .as_array()
            .into_iter()
            .flatten()
            .find(|environment| environment["key"] == wanted.as_str() || environment["name"] == wanted.as_str())
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = environments
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|environment| {
                        let (key, name) = (environment["key"].as_str().unwrap_or("?"), environment["name"].as_str().unwrap_or("?"));
                        if key == name { key.to_owned() } else { format!("{key} ({name})") }
                    })
                    .collect();
                let names = environments.as_array().into_iter().flatten().flat_map(|environment| {
                    [environment["key"].as_str().unwrap_or_default(), environment["name"].as_str().unwrap_or_default()]
                });
                match vexil_core::name::nearest(input, names) {
                    Some(near) => {
                        Failure::Usage(format!("environment `{input}` does not exist; did you mean {near}? (known: {})", known.join(", ")))
                    }
                    None => Failure::Usage(format!("environment `{input}` does not exist; known: {}", known.join(", "))),
                }
            })
    }
}

pub fn key(environment: &Value) -> &str {
    environment["key"].as_str().unwrap_or("?")
}

fn is_protected(environment: &Value) -> bool {
    environment["protected"].as_bool().unwrap_or(false)
}

/// `vexil login`: asks for the server when none is given or saved (on a terminal), then the email and password.
pub fn login(server: Option<&str>, args: LoginArgs) -> CommandResult {
    let server = match server {
        Some(server) => server.to_owned(),
        None if prompt::interactive() => {
            let answer = prompt::line(&format!("Server [{DEFAULT_SERVER}]: "), "")?;
            if answer.is_empty() { DEFAULT_SERVER.to_owned() } else { answer }
        }
        None => DEFAULT_SERVER.to_owned(),
    };
    let email = match args.email {
        Some(email) => email,
        None => prompt::line("Email: ", "pass --email (no terminal to ask on)")?,
    };
    let password = prompt::secret(args.password_stdin, "Password: ")?;
    let client = Client::for_login(&server)?;
    let host = std::env::var("HOSTNAME").ok().filter(|host| !host.is_empty()).unwrap_or_else(|| "cli".into());
    let reply =
        client.post("/api/auth/login", &json!({"email": email, "password": password, "token_name": format!("vexil login on {host}")}))?;
    let token = reply.body["token"].as_str().ok_or_else(|| Failure::Failed("the server sent no token".into()))?.to_owned();
    let path = crate::client::save(&Saved { server: Some(client.server.clone()), token: Some(token), email: Some(email.clone()) })?;
    eprintln!("logged in to {} as {email} ({}); saved to {}", client.server, reply.body["role"].as_str().unwrap_or("?"), path.display());
    Ok(())
}

/// `vexil flags`.
pub fn flags(context: &Context, args: FlagsArgs) -> CommandResult {
    let mut query = Vec::new();
    if let Some(tag) = &args.tag {
        query.push(("tag", tag.clone()));
    }
    if let Some(category) = &args.category {
        query.push(("category", category.clone()));
    }
    if args.archived {
        query.push(("archived", "true".to_owned()));
    }
    if let Some(search) = &args.search {
        query.push(("q", search.clone()));
    }
    let mut response = context.client.get_query("/api/flags", &query)?.body;
    // A page: the flags after the cursor (names are in order), at most `limit` of them.
    let mut next = None;
    if let Some(flags) = response["flags"].as_array_mut() {
        if let Some(cursor) = &args.cursor {
            flags.retain(|flag| flag["name"].as_str().is_some_and(|name| name > cursor.as_str()));
        }
        if let Some(limit) = args.limit.filter(|limit| flags.len() > *limit) {
            flags.truncate(limit);
            next = flags.last().and_then(|flag| flag["name"].as_str()).map(str::to_owned);
        }
    }
    response["next"] = json!(next);
    if let Some(environment) = &args.env {
        let environment = context.environment(environment)?;
        let wanted = key(&environment).to_owned();
        if let Some(list) = response["environments"].as_array_mut() {
            list.retain(|candidate| candidate["key"] == wanted.as_str());
        }
    }
    let filtered = args.tag.is_some() || args.category.is_some() || args.search.is_some() || args.cursor.is_some();
    match context.output {
        Output::Json => context.print_json(&response),
        Output::Text if filtered && response["flags"].as_array().is_none_or(Vec::is_empty) => {
            println!("no flag matches these filters (`vexil flags` lists them all)");
        }
        Output::Text => {
            print!("{}", render::matrix_within(&response, paint::terminal_width()));
            if let Some(next) = &next {
                eprintln!("more flags: `--cursor {next}` for the next page");
            }
        }
    }
    Ok(())
}

/// `vexil get`.
pub fn get(context: &Context, args: GetArgs) -> CommandResult {
    let flag = context.client.get(&format!("/api/flags/{}", segment(&args.flag)))?.body;
    match &args.env {
        Some(environment) => {
            let environment = context.environment(environment)?;
            let path = format!("/api/flags/{}/environments/{}", segment(&args.flag), key(&environment));
            let reply = context.client.get(&path)?;
            match context.output {
                Output::Json => context.print_json(&reply.body),
                Output::Text => {
                    // A plan's progress and the guard's watch, when there is one.
                    let mut status = context.client.get(&format!("{path}/rollout")).map(|reply| reply.body).unwrap_or(Value::Null);
                    let guard = context.client.get(&format!("{path}/guard")).map(|reply| reply.body).unwrap_or(Value::Null);
                    if guard["watched"] == Value::Bool(true) {
                        status["guard"] = guard["report"].clone();
                    }
                    print!("{}", render::state_detail(&flag, key(&environment), &reply.body, Some(&status)));
                }
            }
        }
        None => match context.output {
            Output::Json => context.print_json(&flag),
            Output::Text => {
                let environments = context.client.get("/api/environments")?.body;
                print!("{}", render::tree(&flag, environments.as_array().map(Vec::as_slice).unwrap_or_default()));
                print!("{}", render::definition(&flag));
            }
        },
    }
    Ok(())
}

/// Reads a value typed on the command line: JSON when it parses, else (for string flags) the text itself.
fn typed_value(text: &str, flag_type: &str) -> CommandResult<Value> {
    match flag_type {
        "boolean" => {
            vexil_core::overrides::parse_override(vexil_core::FlagType::Boolean, text).map_err(|error| Failure::Usage(error.message))
        }
        "number" => {
            vexil_core::overrides::parse_override(vexil_core::FlagType::Number, text).map_err(|error| Failure::Usage(error.message))
        }
        "string" => Ok(serde_json::from_str::<Value>(text).ok().filter(Value::is_string).unwrap_or_else(|| Value::String(text.to_owned()))),
        _ => serde_json::from_str(text).map_err(|error| Failure::Usage(format!("`{text}` is not valid JSON: {error}"))),
    }
}

/// `vexil define`.
pub fn define(context: &Context, args: DefineArgs) -> CommandResult {
    let flag_type = vexil_core::FlagType::parse(&args.flag_type).map_err(|error| Failure::Usage(error.message))?;
    let mut body = json!({"name": args.flag, "type": flag_type.as_str()});
    if let Some(default) = &args.default {
        body["default"] = typed_value(default, flag_type.as_str())?;
    }
    if let Some(description) = args.description {
        body["description"] = json!(description);
    }
    if let Some(owner) = args.owner {
        body["owner"] = json!(owner);
    }
    if !args.tags.is_empty() {
        body["tags"] = json!(args.tags);
    }
    if let Some(criticality) = args.criticality {
        body["criticality"] = json!(criticality);
    }
    if !args.variants.is_empty() {
        let variants = args
            .variants
            .iter()
            .map(|variant| {
                let (name, value) =
                    variant.split_once('=').ok_or_else(|| Failure::Usage(format!("variant `{variant}` must be NAME=VALUE")))?;
                Ok(json!({"name": name, "value": typed_value(value, flag_type.as_str())?}))
            })
            .collect::<CommandResult<Vec<Value>>>()?;
        body["variants"] = json!(variants);
    }
    if !args.allowed_values.is_empty() {
        body["allowed_values"] = json!(args.allowed_values);
    }
    if let Some(min) = args.min {
        body["min"] = json!(min);
    }
    if let Some(max) = args.max {
        body["max"] = json!(max);
    }
    let reply = context.client.post("/api/flags", &body)?;
    match context.output {
        Output::Json => context.print_json(&reply.body),
        Output::Text => println!("defined {} ({}), disabled in every environment", args.flag, flag_type.as_str()),
    }
    Ok(())
}

/// `vexil set`.
pub fn set(context: &Context, args: SetArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let path = format!("/api/flags/{}/environments/{}", segment(&args.flag), key(&environment));
    let flag = context.client.get(&format!("/api/flags/{}", segment(&args.flag)))?.body;
    let flag_type = flag["type"].as_str().unwrap_or("boolean").to_owned();
    let current = context.client.get(&path)?;
    let version = current.body["state"]["version"].as_u64();
    let mut state = current.body["state"].clone();
    let before = state.clone();
    if let Some(enabled) = args.enabled {
        state["enabled"] = json!(enabled);
    }
    if let Some(value) = &args.value {
        state["serve"] = json!({"value": typed_value(value, &flag_type)?});
    }
    if let Some(variant) = &args.variant {
        state["serve"] = json!({"variant": variant});
    }
    if let Some(percent) = args.rollout {
        if flag_type != "boolean" {
            return Err(Failure::Usage(format!(
                "--rollout serves true to a share of users, so it needs a boolean flag; {} is {flag_type}",
                args.flag
            )));
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(Failure::Usage(format!("--rollout {percent} is out of range; accepted: 0 to 100")));
        }
        if ((percent * 1000.0).round() - percent * 1000.0).abs() > 1e-6 {
            return Err(Failure::Usage(format!("--rollout {percent} has more than three decimals; accepted: 0 to 100 in steps of 0.001")));
        }
        let thousandths = (percent * 1000.0).round() as u64;
        state["split"] = if thousandths == 100_000 {
            Value::Null
        } else {
            json!({"buckets": [{"serve": {"value": true}, "weight": thousandths}, {"serve": {"value": false}, "weight": 100_000 - thousandths}]})
        };
        if thousandths == 100_000 {
            state["serve"] = json!({"value": true});
        }
    }
    if let Some(file) = &args.rules {
        let targeting = read_structured(file)?;
        let object = targeting
            .as_object()
            .ok_or_else(|| Failure::Usage(format!("{} must hold an object with targets, rules and split", file.display())))?;
        for (field, value) in object {
            if !["targets", "rules", "split"].contains(&field.as_str()) {
                return Err(Failure::Usage(format!("{} has `{field}`; accepted: targets, rules, split", file.display())));
            }
            state[field] = value.clone();
        }
    }
    // A split decides what everyone no target or rule catches gets: a new value or variant shows only without one.
    let hidden_by_split = (args.value.is_some() || args.variant.is_some()) && state["split"].is_object();
    let split_note = || {
        eprintln!(
            "note: {} in {} has a split, which decides what everyone no target or rule catches gets; the value set here is served once the split is removed ({})",
            args.flag,
            key(&environment),
            if flag_type == "boolean" { "--rollout 100" } else { "--rules FILE with \"split\": null" }
        );
    };
    let mut body = json!({
        "enabled": state["enabled"], "serve": state["serve"], "targets": state["targets"], "rules": state["rules"], "split": state["split"],
    });
    let changes = diff_values(&before, &body);
    // Nothing to change is no write: a running rollout plan goes on (any change by a person ends it).
    if changes.is_empty() {
        return report_state(
            context,
            &args.flag,
            &environment,
            &json!({"changed": false, "state": before, "summary": current.body["summary"]}),
        );
    }
    let protected = is_protected(&environment);
    if protected {
        let described = describe_replacement(&flag, &current.body["state"], &body);
        let shown = match described {
            Some(lines) if !lines.is_empty() => lines.iter().map(|line| format!("  {line}\n")).collect(),
            _ => render::diff(&json!(changes)),
        };
        eprintln!("{} in {}:\n{shown}", args.flag, key(&environment));
    }
    let reason = ask_for_change(args.confirm, &environment, &format!("setting {}", args.flag))?;
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    let reply = context.client.put(&path, &body, version).map_err(|failure| in_file(failure, args.rules.as_deref()))?;
    if hidden_by_split {
        split_note();
    }
    report_state(context, &args.flag, &environment, &reply.body)
}

fn diff_values(before: &Value, after: &Value) -> Vec<Value> {
    ["enabled", "serve", "targets", "rules", "split"]
        .iter()
        .filter(|field| before.get(**field).unwrap_or(&Value::Null) != after.get(**field).unwrap_or(&Value::Null))
        .map(|field| json!({"path": field, "before": before.get(*field).cloned().unwrap_or(Value::Null), "after": after[*field]}))
        .collect()
}

fn read_structured(path: &Path) -> CommandResult<Value> {
    let text = read_input(path)?;
    if path.extension().is_some_and(|extension| extension == "toml") {
        toml::from_str::<Value>(&text).map_err(|error| Failure::Usage(format!("{} is not valid TOML: {error}", path.display())))
    } else {
        serde_json::from_str(&text).map_err(|error| Failure::Usage(format!("{} is not valid JSON: {error}", path.display())))
    }
}

fn read_input(path: &Path) -> CommandResult<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|error| Failure::Failed(format!("cannot read standard input: {error}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|error| Failure::Usage(format!("cannot read {}: {error}", path.display())))
}

fn report_state(context: &Context, flag: &str, environment: &Value, body: &Value) -> CommandResult {
    match context.output {
        Output::Json => context.print_json(body),
        Output::Text => {
            let summary = render::marked(&body["state"], body["summary"].as_str());
            if body["changed"] == Value::Bool(true) {
                println!("{flag} in {}: {summary} (version {})", key(environment), body["state"]["version"]);
            } else {
                println!("{flag} in {}: already {summary}; nothing changed", key(environment));
            }
        }
    }
    Ok(())
}

/// `vexil enable` and `vexil disable`.
pub fn toggle(context: &Context, args: ToggleArgs, enabled: bool) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let protected = is_protected(&environment);
    let verb = if enabled { "enable" } else { "disable" };
    let gerund = if enabled { "enabling" } else { "disabling" };
    // In a protected environment a tag is resolved here, so the confirmation names exactly the flags it changes and
    // exactly those are sent: a flag tagged after the confirmation was shown is not swept in.
    let mut flags = args.flags.clone();
    let mut tag = args.tag.clone();
    if let (Some(wanted), true) = (&args.tag, protected) {
        let listing = context.client.get_query("/api/flags", &[("tag", wanted.clone())])?.body;
        if listing["flags"].as_array().is_none_or(Vec::is_empty) {
            return Err(Failure::Usage(format!(
                "no flag is tagged `{wanted}`; nothing was changed (`vexil flags --tag TAG` lists a tag's flags)"
            )));
        }
        flags = listing["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|flag| flag["environments"][key(&environment)]["enabled"] != Value::Bool(enabled))
            .filter_map(|flag| flag["name"].as_str().map(str::to_owned))
            .collect();
        if flags.is_empty() {
            if context.output == Output::Json {
                context.print_json(&json!({"changed": [], "unchanged": []}));
                return Ok(());
            }
            println!(
                "no flag tagged {wanted} is {} in {}; nothing to change",
                if enabled { "disabled" } else { "enabled" },
                key(&environment)
            );
            return Ok(());
        }
        tag = None;
    }
    let what = match &tag {
        Some(tag) => format!("{gerund} every flag tagged {tag}"),
        None if args.tag.is_some() => {
            format!("{gerund} {} (the flags tagged {} that are not yet {verb}d)", flags.join(", "), args.tag.as_deref().unwrap_or_default())
        }
        None => format!("{gerund} {}", flags.join(", ")),
    };
    // The emergency path: `disable … --env=prod --reason=…` runs at once, because turning a flag off must never wait:
    // a disable needs a reason in a protected environment, never a confirmation.
    let emergency = !enabled;
    // Before turning a protected environment's flag on, what it will serve: an armed state (a rollout, rules) goes
    // live with the switch. Only asked when someone is there to read it.
    if enabled && protected && prompt::interactive() && args.tag.is_none() {
        for flag in &flags {
            let state = context.client.get(&format!("/api/flags/{}/environments/{}", segment(flag), key(&environment)))?.body;
            eprintln!("{flag} in {}: {}", key(&environment), state["summary"].as_str().unwrap_or("?"));
        }
    }
    let reason = prompt::protected_change(args.confirm.reason, args.confirm.yes, emergency, key(&environment), protected, &what)?;
    if flags.len() == 1 && args.tag.is_none() {
        let body = json!({"reason": reason});
        let reply = context.client.post(&format!("/api/flags/{}/environments/{}/{verb}", segment(&flags[0]), key(&environment)), &body)?;
        return report_state(context, &flags[0], &environment, &reply.body);
    }
    let mut body = json!({"action": verb, "environment": key(&environment), "reason": reason});
    match &tag {
        Some(tag) => body["tag"] = json!(tag),
        None => body["flags"] = json!(flags),
    }
    let reply = context.client.post("/api/flags/bulk", &body)?;
    let none = |field: &str| reply.body[field].as_array().is_none_or(Vec::is_empty);
    if let (Some(tag), true) = (&args.tag, none("changed") && none("unchanged")) {
        return Err(Failure::Usage(format!(
            "no flag is tagged `{tag}`; nothing was changed (`vexil flags --tag TAG` lists a tag's flags)"
        )));
    }
    match context.output {
        Output::Json => context.print_json(&reply.body),
        Output::Text => {
            let list = |field: &str| {
                reply.body[field]
                    .as_array()
                    .map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            };
            let changed = list("changed");
            let unchanged = list("unchanged");
            if !changed.is_empty() {
                println!("{verb}d in {}: {changed}", key(&environment));
            }
            if !unchanged.is_empty() {
                println!("already {verb}d in {}: {unchanged}", key(&environment));
            }
        }
    }
    Ok(())
}

/// `vexil promote`.
pub fn promote(context: &Context, args: PromoteArgs) -> CommandResult {
    let from = context.environment(&args.from)?;
    let to = context.environment(&args.to)?;
    let path = format!("/api/flags/{}/promote", segment(&args.flag));
    let preview = context.client.post(&path, &json!({"from": key(&from), "to": key(&to), "skip": args.skip, "dry_run": true}))?.body;
    let changes = &preview["changes"];
    if changes.as_array().is_none_or(Vec::is_empty) {
        if context.output == Output::Json {
            context.print_json(&preview);
        } else {
            println!("{} in {} already matches {}; nothing to promote", args.flag, key(&to), key(&from));
        }
        return Ok(());
    }
    eprintln!("promote {} from {} to {}:\n{}", args.flag, key(&from), key(&to), render::described(&preview["described"], changes));
    if args.dry_run {
        if context.output == Output::Json {
            context.print_json(&preview);
        } else {
            println!("would promote {} from {} to {}; nothing was changed", args.flag, key(&from), key(&to));
        }
        return Ok(());
    }
    let reason = ask_for_change(args.confirm, &to, &format!("promoting {}", args.flag))?;
    let mut body = json!({
        "from": key(&from), "to": key(&to), "skip": args.skip, "reason": reason,
        // What was shown is what is promoted: the target, the source and the definition (what variants mean) as seen.
        "expected_version": preview["target_version"],
        "expected_source_version": preview["source_version"],
        "expected_definition_version": preview["definition_version"],
    });
    if !args.rollout.is_empty() {
        body["rollout"] = json!({"steps": args.rollout, "every": args.every});
    }
    let reply = context.client.post(&path, &body)?.body;
    match context.output {
        Output::Json => context.print_json(&reply),
        Output::Text if args.rollout.is_empty() => println!("promoted {} from {} to {}", args.flag, key(&from), key(&to)),
        Output::Text => println!("promoting {} from {} to {} as a rollout: {:?} %", args.flag, key(&from), key(&to), args.rollout),
    }
    Ok(())
}

fn print_batch(context: &Context, (done, verb): (&str, &str), body: &Value) {
    if context.output == Output::Json {
        context.print_json(body);
        return;
    }
    for flag in body["flags"].as_array().into_iter().flatten() {
        eprint!("{}:\n{}", flag["flag"].as_str().unwrap_or("?"), render::described(&flag["described"], &flag["changes"]));
    }
    let changed = body["flags"].as_array().map(Vec::len).unwrap_or(0);
    let unchanged = body["unchanged"].as_array().map(Vec::len).unwrap_or(0);
    let applied = body["applied"] == Value::Bool(true);
    println!(
        "{} {changed} flag{} into {} ({unchanged} already identical){}",
        if applied { done.to_owned() } else { format!("would {verb}") },
        if changed == 1 { "" } else { "s" },
        body["to"].as_str().unwrap_or("?"),
        if applied || changed == 0 { "" } else { "; nothing was changed" }
    );
}

/// The versions a batch diff was computed against, by flag (`field` of each of its flags): sent back with the change
/// so the server refuses it when anything moved since the diff was shown.
fn diff_pins(preview: &Value, field: &str) -> serde_json::Map<String, Value> {
    preview["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|flag| (flag["flag"].as_str().unwrap_or("").to_owned(), flag[field].clone()))
        .collect()
}

/// `vexil copy`.
pub fn copy(context: &Context, args: CopyArgs) -> CommandResult {
    let from = context.environment(&args.from)?;
    let to = context.environment(&args.to)?;
    let flags = if args.flags.is_empty() { Value::Null } else { json!(args.flags) };
    let preview =
        context.client.post("/api/flags/copy", &json!({"from": key(&from), "to": key(&to), "flags": flags, "dry_run": true}))?.body;
    let pending = preview["flags"].as_array().map(Vec::len).unwrap_or(0);
    if args.dry_run || pending == 0 {
        print_batch(context, ("copied", "copy"), &preview);
        return Ok(());
    }
    for flag in preview["flags"].as_array().into_iter().flatten() {
        eprint!("{}:\n{}", flag["flag"].as_str().unwrap_or("?"), render::described(&flag["described"], &flag["changes"]));
    }
    let what = format!("copying {} from {}", render::count(pending, "flag state"), key(&from));
    let reason = ask_for_change(args.confirm, &to, &what)?;
    // What was shown is what is copied: each target, source and definition as seen.
    let versions = |field: &str| diff_pins(&preview, field);
    let body = json!({"from": key(&from), "to": key(&to), "flags": flags, "reason": reason,
        "expected_versions": versions("target_version"), "expected_source_versions": versions("source_version"),
        "expected_definition_versions": versions("definition_version")});
    let reply = context.client.post("/api/flags/copy", &body)?.body;
    if context.output == Output::Json {
        context.print_json(&reply);
    } else {
        println!("copied {pending} flag state{} from {} into {}", if pending == 1 { "" } else { "s" }, key(&from), key(&to));
    }
    Ok(())
}

/// `vexil export`.
pub fn export(context: &Context, args: ExportArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let document = context.client.get(&format!("/api/environments/{}/export", key(&environment)))?.body;
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    match args.out {
        Some(path) => {
            std::fs::write(&path, format!("{text}\n"))
                .map_err(|error| Failure::Failed(format!("cannot write {}: {error}", path.display())))?;
            eprintln!(
                "exported {} flag states of {} to {}",
                document["flags"].as_object().map(|flags| flags.len()).unwrap_or(0),
                key(&environment),
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// `vexil import`.
pub fn import(context: &Context, args: ImportArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let text = read_input(&args.file)?;
    let document: Value =
        serde_json::from_str(&text).map_err(|error| Failure::Usage(format!("{} is not valid JSON: {error}", args.file.display())))?;
    let path = format!("/api/environments/{}/import", key(&environment));
    let preview = context
        .client
        .post(&path, &json!({"document": document, "dry_run": true}))
        .map_err(|failure| in_file(failure, Some(&args.file)))?
        .body;
    let pending = preview["flags"].as_array().map(Vec::len).unwrap_or(0);
    if args.dry_run || pending == 0 {
        print_batch(context, ("imported", "import"), &preview);
        return Ok(());
    }
    for flag in preview["flags"].as_array().into_iter().flatten() {
        eprint!("{}:\n{}", flag["flag"].as_str().unwrap_or("?"), render::described(&flag["described"], &flag["changes"]));
    }
    let what = format!("importing {}", render::count(pending, "flag state"));
    let reason = ask_for_change(args.confirm, &environment, &what)?;
    // What was shown is what is imported: each target state and definition as the diff saw them.
    let versions = |field: &str| diff_pins(&preview, field);
    let body = json!({"document": document, "reason": reason, "expected_versions": versions("target_version"),
        "expected_definition_versions": versions("definition_version")});
    let reply = context.client.post(&path, &body)?.body;
    if context.output == Output::Json {
        context.print_json(&reply);
    } else {
        println!("imported {pending} flag state{} into {}", if pending == 1 { "" } else { "s" }, key(&environment));
    }
    Ok(())
}

/// `vexil audit` and `vexil audit verify`.
pub fn audit(context: &Context, args: AuditArgs) -> CommandResult {
    if let Some(AuditCommand::Verify) = args.verify {
        let report = context.client.get("/api/flags/audit/verify")?.body;
        if context.output == Output::Json {
            context.print_json(&report);
        } else if report["intact"] == Value::Bool(true) {
            println!("audit trail intact: {} records, hash chain verified", report["records"]);
        } else {
            println!("audit trail BROKEN: {}", report["problem"].as_str().unwrap_or("unknown problem"));
        }
        return if report["intact"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(Failure::Failed(format!("the audit trail was tampered with: {}", report["problem"].as_str().unwrap_or("?"))))
        };
    }
    let mut query = vec![("limit", args.limit.to_string())];
    for (name, value) in
        [("flag", args.flag), ("env", args.env), ("user", args.user), ("action", args.action), ("since", args.since), ("until", args.until)]
    {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    let mut cursor = args.cursor;
    let mut entries = Vec::new();
    let next = loop {
        let mut page_query = query.clone();
        if let Some(cursor) = &cursor {
            page_query.push(("cursor", cursor.clone()));
        }
        let page = context.client.get_query("/api/flags/audit", &page_query)?.body;
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        let next = page["next"].as_str().map(str::to_owned);
        match next {
            Some(next) if args.all => cursor = Some(next),
            next => break next,
        }
    };
    match context.output {
        Output::Json => context.print_json(&json!({"entries": entries, "next": next})),
        Output::Text => {
            // Records name environments by their long names; the table uses the keys every command takes.
            let environments = context.client.get("/api/environments").map(|reply| reply.body).unwrap_or(Value::Null);
            for entry in &mut entries {
                let key = environments.as_array().into_iter().flatten().find(|environment| environment["name"] == entry["environment"]);
                if let Some(key) = key.map(|environment| environment["key"].clone()) {
                    entry["environment"] = key;
                }
            }
            print!("{}", render::audit_within(&Value::Array(entries), paint::terminal_width()));
            if let Some(next) = next {
                eprintln!("more records: the same command with `--cursor {next}` for the next page, or with --all");
            }
        }
    }
    Ok(())
}

/// `vexil user …`.
pub fn user(context: &Context, command: UserCommand) -> CommandResult {
    match command {
        UserCommand::Add { email, role, password_stdin } => {
            let password = if password_stdin { Some(prompt::secret(true, "")?) } else { None };
            let reply = context.client.post("/api/users", &json!({"email": email, "role": role, "password": password}))?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => {
                    println!("added {email} as {role}");
                    if let Some(password) = reply["password"].as_str() {
                        println!("password (shown once): {password}");
                    }
                }
            }
        }
        UserCommand::List { limit, cursor } => {
            let all = context.client.get("/api/users")?.body.as_array().cloned().unwrap_or_default();
            let (users, next) = page(all, "email", limit, cursor.as_deref());
            let users = Value::Array(users);
            // Under JSON the page is the API's array; where the next one starts goes to standard error either way.
            more("users", next.as_deref());
            match context.output {
                Output::Json => context.print_json(&users),
                Output::Text => {
                    let mut rows = vec![vec!["EMAIL".to_owned(), "ROLE".into(), "CREATED".into(), "STATUS".into()]];
                    for user in users.as_array().into_iter().flatten() {
                        rows.push(vec![
                            user["email"].as_str().unwrap_or("?").into(),
                            user["role"].as_str().unwrap_or("?").into(),
                            user["created_at"].as_str().unwrap_or("?").into(),
                            if user["disabled"] == Value::Bool(true) { "disabled".into() } else { "active".into() },
                        ]);
                    }
                    print!("{}", render::table(&rows));
                }
            }
        }
        UserCommand::SetRole { email, role, yes } => {
            // Your own role is the one change here you may not be able to undo yourself.
            let me = context.client.get("/api/me")?.body;
            if me["email"] == email.as_str() && me["role"] != role.as_str() && !yes {
                let question = format!(
                    "you are changing your own role from {} to {role}, which may take away what you need to change it back; type `yes` to confirm: ",
                    me["role"].as_str().unwrap_or("?")
                );
                if !prompt::interactive() || prompt::line(&question, "")? != "yes" {
                    return Err(Failure::Refused(format!(
                        "changing your own role needs a confirmation (--yes); nothing was changed{}",
                        if prompt::interactive() { "" } else { " (no terminal to ask on)" }
                    )));
                }
            }
            let reply = context.client.patch(&format!("/api/users/{}", segment(&email)), &json!({"role": role}))?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("{email} is now {role}"),
            }
        }
        UserCommand::Disable { email } => {
            let reply = context.client.patch(&format!("/api/users/{}", segment(&email)), &json!({"disabled": true}))?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("{email} is disabled; their tokens no longer work (`vexil user enable {email}` undoes it)"),
            }
        }
        UserCommand::Enable { email } => {
            let reply = context.client.patch(&format!("/api/users/{}", segment(&email)), &json!({"disabled": false}))?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("{email} is enabled again"),
            }
        }
        UserCommand::SetPassword { email, password_stdin } => {
            let password = prompt::secret(password_stdin, &format!("New password for {email}: "))?;
            let reply = context.client.patch(&format!("/api/users/{}", segment(&email)), &json!({"password": password}))?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("the password of {email} is set; their other sessions and personal tokens are revoked"),
            }
        }
    }
    Ok(())
}

/// `vexil token …`.
pub fn token(context: &Context, command: TokenCommand) -> CommandResult {
    match command {
        TokenCommand::Create { user, name, sdk, client, env, origins } => {
            let body = match (sdk, client) {
                (true, _) => json!({"kind": "sdk", "environment": env, "name": name}),
                (_, true) if origins.is_empty() => json!({"kind": "client", "environment": env, "name": name}),
                (_, true) => json!({"kind": "client", "environment": env, "name": name, "origins": origins}),
                _ => json!({"user": user, "name": name}),
            };
            let reply = context.client.post("/api/tokens", &body)?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("{}", reply["token"].as_str().unwrap_or_default()),
            }
        }
        TokenCommand::List { limit, cursor } => {
            let all = context.client.get("/api/tokens")?.body.as_array().cloned().unwrap_or_default();
            let (tokens, next) = page(all, "id", limit, cursor.as_deref());
            let tokens = Value::Array(tokens);
            // Under JSON the page is the API's array; where the next one starts goes to standard error either way.
            more("tokens", next.as_deref());
            match context.output {
                Output::Json => context.print_json(&tokens),
                Output::Text => {
                    let mut rows = vec![vec![
                        "ID".to_owned(),
                        "KIND".into(),
                        "ENVIRONMENT".into(),
                        "USER".into(),
                        "NAME".into(),
                        "CREATED".into(),
                        "STATUS".into(),
                    ]];
                    for token in tokens.as_array().into_iter().flatten() {
                        let kind = match token["kind"].as_str().unwrap_or("personal") {
                            "sdk" => "SDK key (server)",
                            "client" => "client-side key",
                            "trigger" => "trigger",
                            _ => "personal token",
                        };
                        rows.push(vec![
                            token["id"].as_str().unwrap_or("?").into(),
                            kind.into(),
                            token["environment"].as_str().unwrap_or("-").into(),
                            token["user"].as_str().unwrap_or("?").into(),
                            token["name"].as_str().unwrap_or("?").into(),
                            token["created_at"].as_str().unwrap_or("?").into(),
                            token["revoked_at"].as_str().map(|at| format!("revoked {at}")).unwrap_or_else(|| "active".into()),
                        ]);
                    }
                    print!("{}", render::table(&rows));
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let reply = context.client.delete(&format!("/api/tokens/{}", segment(&id)))?.body;
            revoked(context, &id, &reply);
        }
    }
    Ok(())
}

/// `vexil rollout …`.
pub fn rollout(context: &Context, args: crate::cli::RolloutArgs) -> CommandResult {
    use crate::cli::RolloutAction;
    let (target, action) = match args.action {
        Some(RolloutAction::Status(target)) => (target, "status"),
        Some(RolloutAction::Pause(target)) => (target, "pause"),
        Some(RolloutAction::Resume(target)) => (target, "resume"),
        Some(RolloutAction::Abort(target)) => (target, "abort"),
        None => {
            let flag = args.flag.ok_or_else(|| Failure::Usage("name the flag".into()))?;
            let environment = context.environment(args.env.as_deref().unwrap_or_default())?;
            let steps: Vec<String> = args.steps.iter().map(|step| step.to_string()).collect();
            let what = format!("rolling {flag} out in steps of {} %", steps.join(" → "));
            let reason = ask_for_change(args.confirm, &environment, &what)?;
            let body = json!({"steps": args.steps, "every": args.every, "reason": reason});
            let path = format!("/api/flags/{}/environments/{}", segment(&flag), key(&environment));
            let reply = context.client.post(&format!("{path}/rollout"), &body)?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => {
                    println!(
                        "{flag} in {}: {} — rollout started, next step every {}",
                        key(&environment),
                        render::marked(&reply["state"], reply["summary"].as_str()),
                        args.every.unwrap_or_default()
                    );
                    // Guarded steps wait for evidence: said now, not discovered when the plan seems stuck.
                    let settings = context.client.get(&format!("{path}/guard")).ok().map(|reply| reply.body["settings"].clone());
                    if let Some(settings) = settings.filter(|settings| settings["steps_wait_for_evidence"] == Value::Bool(true)) {
                        eprintln!(
                            "each step waits until the guard has seen {} evaluations of the new and of the old variant at the current step, from SDK metrics (the server's rollout_without_evidence = \"advance\" goes on schedule instead); `vexil rollout status {flag} --env {}` says what it waits for",
                            settings["min_evaluations"],
                            key(&environment)
                        );
                    }
                }
            }
            return Ok(());
        }
    };
    let environment = context.environment(&target.env)?;
    let path = format!("/api/flags/{}/environments/{}/rollout", segment(&target.flag), key(&environment));
    if action == "status" {
        let status = context.client.get(&path)?.body;
        match context.output {
            Output::Json => context.print_json(&status),
            Output::Text => match status["plan"].as_object() {
                None => println!(
                    "{} in {}: no rollout in progress ({})",
                    target.flag,
                    key(&environment),
                    if status["enabled"] == true { format!("serving {} %", status["percent"]) } else { "disabled".into() }
                ),
                Some(plan) => {
                    let steps: Vec<String> =
                        plan["steps"].as_array().into_iter().flatten().filter_map(Value::as_u64).map(render::percent).collect();
                    let next = if plan["paused"] == true {
                        ", paused".to_owned()
                    } else {
                        format!(", next step due at {}", plan["next_at"].as_str().unwrap_or("?"))
                    };
                    println!(
                        "{} in {}: at {} %, step {} of {} ({} %){next}",
                        target.flag,
                        key(&environment),
                        status["percent"],
                        plan["next_step"],
                        steps.len(),
                        steps.join(" → "),
                    );
                    if let Some(step) = status["guard"]["step"].as_object() {
                        println!(
                            "guard at this step: {} evaluations of the new variant, {} of the old (needs {} each){}",
                            step["candidate"]["evaluations"],
                            step["alongside"]["evaluations"],
                            step["needed"],
                            if step["healthy"] == true { ", healthy" } else { "" }
                        );
                    }
                    if let Some(waiting) = status["waiting"].as_str() {
                        println!("{waiting}");
                    }
                }
            },
        }
        return Ok(());
    }
    let reason = prompt::protected_change(
        target.confirm.reason,
        target.confirm.yes,
        action == "abort" || action == "pause",
        key(&environment),
        is_protected(&environment),
        &format!("{action} the rollout of {}", target.flag),
    )?;
    let reply = context.client.post(&format!("{path}/{action}"), &json!({"reason": reason}))?.body;
    match context.output {
        Output::Json => context.print_json(&reply),
        Output::Text => {
            let done = match action {
                "pause" => "paused",
                "resume" => "resumed",
                _ => "aborted",
            };
            println!("{}: rollout {done} in {}", target.flag, key(&environment));
        }
    }
    Ok(())
}

/// `vexil trigger …`.
pub fn trigger(context: &Context, command: crate::cli::TriggerCommand) -> CommandResult {
    use crate::cli::TriggerCommand;
    match command {
        TriggerCommand::Create { flag, env, name, action } => {
            let environment = context.environment(&env)?;
            let body = json!({"flag": flag, "environment": key(&environment), "name": name, "action": action});
            let reply = context.client.post("/api/triggers", &body)?.body;
            match context.output {
                Output::Json => context.print_json(&reply),
                Output::Text => println!("{}", reply["url"].as_str().unwrap_or_default()),
            }
        }
        TriggerCommand::List => {
            let tokens = context.client.get("/api/tokens")?.body;
            let triggers: Vec<Value> =
                tokens.as_array().into_iter().flatten().filter(|token| token["kind"] == "trigger").cloned().collect();
            match context.output {
                Output::Json => context.print_json(&json!(triggers)),
                Output::Text => {
                    let mut rows =
                        vec![vec!["ID".to_owned(), "FLAG".into(), "ENVIRONMENT".into(), "NAME".into(), "ACTION".into(), "STATUS".into()]];
                    for trigger in &triggers {
                        rows.push(vec![
                            trigger["id"].as_str().unwrap_or("?").into(),
                            trigger["flag"].as_str().unwrap_or("?").into(),
                            trigger["environment"].as_str().unwrap_or("?").into(),
                            trigger["name"].as_str().unwrap_or("?").into(),
                            trigger["action"].as_str().unwrap_or("disable").into(),
                            trigger["revoked_at"].as_str().map(|at| format!("revoked {at}")).unwrap_or_else(|| "active".into()),
                        ]);
                    }
                    print!("{}", render::table(&rows));
                }
            }
        }
        TriggerCommand::Revoke { id } => {
            let reply = context.client.delete(&format!("/api/tokens/{}", segment(&id)))?.body;
            revoked(context, &id, &reply);
        }
    }
    Ok(())
}

/// `vexil apply`: see [`crate::registry`].
pub fn apply(context: &Context, args: ApplyArgs) -> CommandResult {
    crate::registry::apply(context, args)
}

/// `vexil rollback FLAG --env E`: shows what the last change's undo restores, asks like any change there, and makes it.
pub fn rollback(context: &Context, args: RollbackArgs) -> CommandResult {
    let environment = context.environment(&args.env)?;
    let path = format!("/api/flags/{}/environments/{}/rollback", segment(&args.flag), key(&environment));
    let preview = context.client.post(&path, &json!({"dry_run": true}))?.body;
    let described: Vec<&str> = preview["described"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    eprintln!(
        "rolling back {} in {}: undoes audit record {} ({} by {})\n{}",
        args.flag,
        key(&environment),
        preview["undoes"],
        preview["undoes_action"].as_str().unwrap_or("?"),
        preview["undoes_user"].as_str().unwrap_or("?"),
        if described.is_empty() {
            "  (no difference in what it serves)".to_owned()
        } else {
            described.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
        }
    );
    if args.dry_run {
        match context.output {
            Output::Json => context.print_json(&preview),
            Output::Text => println!("would roll back {} in {}; nothing was changed", args.flag, key(&environment)),
        }
        return Ok(());
    }
    let reason = ask_for_change(args.confirm, &environment, &format!("rolling back {}", args.flag))?;
    let reply = context.client.post(&path, &json!({"reason": reason, "expected_version": preview["target_version"]}))?.body;
    match context.output {
        Output::Json => context.print_json(&reply),
        Output::Text => println!(
            "{} in {}: {} (version {}, rolled back)",
            args.flag,
            key(&environment),
            render::marked(&reply["state"], reply["summary"].as_str()),
            reply["state"]["version"]
        ),
    }
    Ok(())
}

/// `vexil archive` and `vexil unarchive`.
pub fn archive(context: &Context, args: ArchiveArgs, archived: bool) -> CommandResult {
    let verb = if archived { "archive" } else { "unarchive" };
    let reply = context.client.post(&format!("/api/flags/{}/{verb}", segment(&args.flag)), &json!({"reason": args.reason}))?.body;
    match context.output {
        Output::Json => context.print_json(&reply),
        Output::Text if archived => {
            println!(
                "archived {}: hidden from `vexil flags` (see --archived), its states frozen; `vexil unarchive {}` undoes it",
                args.flag, args.flag
            )
        }
        Output::Text => println!("unarchived {}: listed again, its states can change", args.flag),
    }
    Ok(())
}

/// What a revocation prints: the server's answer under JSON, else a line.
fn revoked(context: &Context, id: &str, reply: &Value) {
    match context.output {
        Output::Json if reply.is_null() => context.print_json(&json!({"revoked": id})),
        Output::Json => context.print_json(reply),
        Output::Text => println!("revoked {id}"),
    }
}

/// A page of a list the server answers whole (tokens, users): the items after the one whose `key` is `cursor`, at
/// most `limit` of them, and the cursor of the next page when there is one.
fn page(items: Vec<Value>, key: &str, limit: Option<usize>, cursor: Option<&str>) -> (Vec<Value>, Option<String>) {
    let start = match cursor {
        Some(cursor) => items.iter().position(|item| item[key] == cursor).map(|index| index + 1).unwrap_or(items.len()),
        None => 0,
    };
    let mut shown: Vec<Value> = items.into_iter().skip(start).collect();
    let next = match limit {
        Some(limit) if shown.len() > limit => {
            shown.truncate(limit);
            shown.last().and_then(|item| item[key].as_str()).map(str::to_owned)
        }
        _ => None,
    };
    (shown, next)
}

/// Says where the next page starts, on standard error (standard output stays the table).
fn more(what: &str, next: Option<&str>) {
    if let Some(next) = next {
        eprintln!("more {what}: `--cursor {next}` for the next page");
    }
}

/// What replacing `current` with the state in `body` changes, in the server's words (`vexil_core::describe`), worked
/// out here from the flag's definition as the API answers it; `None` when the answer does not read as one.
fn describe_replacement(flag: &Value, current: &Value, body: &Value) -> Option<Vec<String>> {
    // The flag's answer is its definition's fields and more (states, summaries), as `vexil resolve` reads it too.
    let definition: vexil_core::FlagDefinition = serde_json::from_value(flag.clone()).ok()?;
    let current: vexil_core::FlagState = serde_json::from_value(current.clone()).ok()?;
    let mut spec = body.clone();
    spec.as_object_mut()?.remove("reason");
    let spec: vexil_core::StateSpec = serde_json::from_value(spec).ok()?;
    Some(vexil_core::describe::replacement_changes(&definition, &current, &spec))
}

/// What a change to `environment` needs from the person, asked on a terminal (see [`prompt::protected_change`]):
/// its reason, when the environment is protected.
fn ask_for_change(confirm: crate::cli::Confirm, environment: &Value, what: &str) -> CommandResult<Option<String>> {
    prompt::protected_change(confirm.reason, confirm.yes, false, key(environment), is_protected(environment), what)
}

/// A refusal of what a file said, pointed at the file: `rules.json: unknown value `endswith`, …` rather than the
/// request the CLI built from it.
fn in_file(failure: Failure, file: Option<&Path>) -> Failure {
    match (failure, file) {
        (Failure::Api { exit: 2, code, message }, Some(file)) => {
            let said = message.strip_prefix("request body is not valid: ").unwrap_or(&message);
            // A parser's line and column are of the request, not of the file: left out.
            let said = match said.find(" at line ") {
                Some(at) => {
                    let rest = &said[at + 1..];
                    let end = rest.find(';').map(|end| at + 1 + end).unwrap_or(said.len());
                    format!("{}{}", &said[..at], &said[end..])
                }
                None => said.to_owned(),
            };
            Failure::Api { exit: 2, code, message: format!("{}: {said}", file.display()) }
        }
        (failure, _) => failure,
    }
}

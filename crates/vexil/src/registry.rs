//! `vexil apply flags.toml`: the definitions registry kept with the application's code.
//!
//! The file lists flags as `[[flag]]` tables (name, type, default, description, owner, tags,
//! criticality, variants, allowed_values, min, max, deprecated). Applying creates new flags, updates
//! changed metadata, reports flags the server has that the file does not, and archives those only with `--prune`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::{ApplyArgs, Output};
use crate::client::{CommandResult, Failure};
use crate::commands::Context;
use crate::prompt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    #[serde(default, rename = "flag")]
    flags: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(rename = "type", default = "boolean")]
    flag_type: String,
    default: Option<toml::Value>,
    description: Option<String>,
    owner: Option<String>,
    tags: Option<Vec<String>>,
    criticality: Option<String>,
    variants: Option<Vec<toml::Value>>,
    allowed_values: Option<Vec<String>>,
    min: Option<f64>,
    max: Option<f64>,
    deprecated: Option<bool>,
}

fn boolean() -> String {
    "boolean".into()
}

/// The metadata fields `apply` manages, as the API names them.
const MANAGED: [&str; 10] =
    ["default", "description", "owner", "tags", "criticality", "variants", "allowed_values", "min", "max", "deprecated"];

impl Entry {
    fn body(&self) -> CommandResult<serde_json::Map<String, Value>> {
        let to_json = |value: &toml::Value| serde_json::to_value(value).map_err(|error| Failure::Usage(error.to_string()));
        let mut body = serde_json::Map::new();
        if let Some(default) = &self.default {
            body.insert("default".into(), to_json(default)?);
        }
        body.insert("description".into(), json!(self.description.clone().unwrap_or_default()));
        if let Some(owner) = &self.owner {
            body.insert("owner".into(), json!(owner));
        }
        body.insert("tags".into(), json!(self.tags.clone().unwrap_or_default()));
        body.insert("criticality".into(), json!(self.criticality.clone().unwrap_or_else(|| "medium".into())));
        let variants = self.variants.iter().flatten().map(to_json).collect::<CommandResult<Vec<Value>>>()?;
        body.insert("variants".into(), json!(variants));
        if let Some(allowed) = &self.allowed_values {
            body.insert("allowed_values".into(), json!(allowed));
        }
        if let Some(min) = self.min {
            body.insert("min".into(), json!(min));
        }
        if let Some(max) = self.max {
            body.insert("max".into(), json!(max));
        }
        body.insert("deprecated".into(), json!(self.deprecated.unwrap_or(false)));
        Ok(body)
    }
}

fn same(left: Option<&Value>, right: Option<&Value>) -> bool {
    let normalise = |value: Option<&Value>| match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Number(number)) => json!(number.as_f64()),
        Some(other) => other.clone(),
    };
    normalise(left) == normalise(right)
}

/// The most flags one apply request names (the server's limit too).
const CHUNK: usize = 2000;

/// Whether an apply request names nothing to create, update or archive.
fn entries_empty(request: &Value) -> bool {
    request["flags"].as_array().is_none_or(Vec::is_empty) && request["archive"].as_object().is_none_or(serde_json::Map::is_empty)
}

/// The names of the fields a definition patch changes.
fn patch_fields(changes: &serde_json::Map<String, Value>) -> String {
    changes.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Applies the registry file. A definition change that alters what a protected environment serves is a change to
/// that environment: it needs `--reason` and confirmation (`--yes` without a terminal), like any other.
/// Reads a registry file, refusing one that names a flag twice.
fn read(file: &std::path::Path) -> CommandResult<Registry> {
    let text = std::fs::read_to_string(file).map_err(|error| Failure::Usage(format!("cannot read {}: {error}", file.display())))?;
    let registry: Registry =
        toml::from_str(&text).map_err(|error| Failure::Usage(format!("{} is not a valid registry: {error}", file.display())))?;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &registry.flags {
        if !seen.insert(entry.name.clone()) {
            return Err(Failure::Usage(format!("{} defines {} twice", file.display(), entry.name)));
        }
    }
    Ok(registry)
}

pub fn apply(context: &Context, args: ApplyArgs) -> CommandResult {
    let registry = read(&args.file)?;
    let seen: std::collections::BTreeSet<String> = registry.flags.iter().map(|entry| entry.name.clone()).collect();
    let listing = context.client.get_query("/api/flags", &[("archived", "true".to_owned())])?.body;
    let existing: BTreeMap<String, Value> = listing["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|flag| (flag["name"].as_str().unwrap_or_default().to_owned(), flag.clone()))
        .collect();
    // One request computes where every edit reaches (a dry run), one more makes them all, in one write.
    let (mut entries, mut unchanged, mut fields) = (Vec::new(), Vec::new(), BTreeMap::new());
    for entry in &registry.flags {
        let body = entry.body()?;
        let mut item = match existing.get(&entry.name) {
            None => body,
            Some(current) => {
                let current_type = current["type"].as_str().unwrap_or_default();
                let wanted_type = vexil_core::FlagType::parse(&entry.flag_type)
                    .map_err(|error| Failure::Usage(format!("{}: {}", entry.name, error.message)))?;
                if current_type != wanted_type.as_str() {
                    return Err(Failure::Failed(format!(
                        "{} is a {current_type} flag on the server but {} in {}; a flag's type cannot change: define a new flag instead",
                        entry.name,
                        wanted_type.as_str(),
                        args.file.display()
                    )));
                }
                let changes: serde_json::Map<String, Value> = MANAGED
                    .iter()
                    .filter_map(|field| {
                        body.get(*field)
                            .filter(|value| !same(Some(value), current.get(*field)))
                            .map(|value| ((*field).to_owned(), value.clone()))
                    })
                    .collect();
                if changes.is_empty() && current["archived"] != Value::Bool(true) {
                    unchanged.push(entry.name.clone());
                    continue;
                }
                fields.insert(entry.name.clone(), patch_fields(&changes));
                let mut changes = changes;
                // Pinned to the definition the changes were computed against.
                changes.insert("version".into(), current["version"].clone());
                changes
            }
        };
        item.insert("name".into(), json!(entry.name));
        item.insert("type".into(), json!(entry.flag_type));
        entries.push(Value::Object(item));
    }
    let missing: Vec<String> = existing
        .iter()
        .filter(|(name, flag)| flag["archived"] != Value::Bool(true) && !seen.contains(*name))
        .map(|(name, _)| name.clone())
        .collect();
    let archive: serde_json::Map<String, Value> = if args.prune {
        missing.iter().map(|name| (name.clone(), existing[name]["version"].clone())).collect()
    } else {
        serde_json::Map::new()
    };
    // One request per CHUNK flags: each is one write, and the kill switch waits behind at most one of them.
    let mut requests: Vec<Value> = entries.chunks(CHUNK).map(|chunk| json!({"flags": chunk, "archive": {}})).collect();
    let archive: Vec<(String, Value)> = archive.into_iter().collect();
    requests.extend(
        archive.chunks(CHUNK).map(|chunk| json!({"flags": [], "archive": chunk.iter().cloned().collect::<serde_json::Map<_, _>>()})),
    );
    requests.retain(|request| !entries_empty(request));
    let send = |extra: &serde_json::Map<String, Value>| -> CommandResult<Option<Value>> {
        let mut merged: Option<Value> = None;
        for request in &requests {
            let mut request = request.clone();
            request.as_object_mut().expect("an object").extend(extra.clone());
            let answer = context.client.post("/api/flags/apply", &request)?.body;
            merged = Some(match merged {
                None => answer,
                Some(mut merged) => {
                    for key in ["created", "unchanged", "archived"] {
                        let more = answer[key].as_array().cloned().unwrap_or_default();
                        if let Some(list) = merged[key].as_array_mut() {
                            list.extend(more);
                        }
                    }
                    let more = answer["updated"].as_object().cloned().unwrap_or_default();
                    if let Some(map) = merged["updated"].as_object_mut() {
                        map.extend(more);
                    }
                    merged
                }
            });
        }
        Ok(merged)
    };
    let preview = send(&serde_json::Map::from_iter([("dry_run".to_owned(), json!(true))]))?;
    let reaches = |kind: &str, protected: bool| -> Vec<(String, Vec<String>)> {
        let updated = preview.as_ref().and_then(|preview| preview["updated"].as_object().cloned()).unwrap_or_default();
        updated
            .into_iter()
            .map(|(flag, affects)| {
                let environments = affects
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|affected| affected["effect"] == kind && (!protected || affected["protected"] == true))
                    .filter_map(|affected| affected["environment"].as_str().map(str::to_owned))
                    .collect();
                (flag, environments)
            })
            .collect()
    };
    let serving = reaches("serving", false);
    let protected: Vec<(String, Vec<String>)> =
        reaches("serving", true).into_iter().filter(|(_, environments)| !environments.is_empty()).collect();
    let mut result = preview.clone();
    if !args.dry_run && preview.is_some() {
        let mut extra = serde_json::Map::from_iter([("dry_run".to_owned(), json!(false))]);
        // A reason goes only with protected changes the person confirmed. Without one, an edit that came to change a
        // protected environment between the dry run and the write is refused for want of it, never given a reason
        // nobody wrote; and every entry is pinned to the definition the dry run judged.
        if let Some((_, environments)) = protected.first() {
            let what: Vec<String> = protected
                .iter()
                .map(|(flag, environments)| {
                    format!("{flag} changes what {} serves ({})", environments.join(", "), fields.get(flag).cloned().unwrap_or_default())
                })
                .collect();
            let reason =
                prompt::protected_change(args.confirm.reason.clone(), args.confirm.yes, false, &environments[0], true, &what.join("; "))?;
            extra.insert("reason".into(), json!(reason));
            // The reason goes with exactly the edits the person confirmed.
            extra.insert("confirmed".into(), json!(protected.iter().map(|(flag, _)| flag).collect::<Vec<_>>()));
        }
        result = send(&extra)?;
    }
    let list = |key: &str| -> Vec<String> {
        result
            .as_ref()
            .and_then(|result| result[key].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    };
    let created = list("created");
    let archived = if args.dry_run { Vec::new() } else { list("archived") };
    let updated: Vec<String> = serving
        .iter()
        .map(|(flag, environments)| {
            let reach = if environments.is_empty() { String::new() } else { format!("; changes what {} serves", environments.join(", ")) };
            format!("{flag} ({}{reach})", fields.get(flag).cloned().unwrap_or_default())
        })
        .collect();
    let report = json!({"created": created, "updated": updated, "unchanged": unchanged, "missing": missing, "archived": archived, "dry_run": args.dry_run});
    match context.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Output::Text => {
            let prefix = if args.dry_run { "would be " } else { "" };
            print!("{}", block(&format!("{prefix}created"), &created));
            print!("{}", block(&format!("{prefix}updated"), &updated));
            // What did not change is counted, not listed: in a registry of thousands it would hide the rest.
            if !unchanged.is_empty() {
                println!("unchanged: {}", crate::render::count(unchanged.len(), "flag"));
            }
            if args.prune && !args.dry_run {
                print!("{}", block("archived (not in the file)", &missing));
            } else {
                print!("{}", block("not in the file (archive them with --prune)", &missing));
            }
        }
    }
    Ok(())
}

/// `label (N):` and the items one per line (nothing when there are none; a single item on the label's line).
fn block(label: &str, items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => format!("{label}: {one}\n"),
        many => {
            let mut text = format!("{label} ({}):\n", many.len());
            for item in many {
                text.push_str(&format!("  {item}\n"));
            }
            text
        }
    }
}

/// `vexil codegen --lang ts flags.toml`: the registry as a TypeScript module (the seed's `featureFlags.ts`), so an
/// application names flags through types: a misspelt flag, or a value a flag cannot take, does not compile. With
/// `--check FILE` it writes nothing and fails when FILE is not what it would write (for CI).
pub fn codegen(args: crate::cli::CodegenArgs) -> CommandResult {
    let registry = read(&args.file)?;
    let source = typescript(&registry, &args.file.display().to_string())?;
    match &args.check {
        None => {
            print!("{source}");
            Ok(())
        }
        Some(path) => {
            let current = std::fs::read_to_string(path).unwrap_or_default();
            if current == source {
                Ok(())
            } else {
                Err(Failure::Failed(format!(
                    "{} is stale: it is not what `vexil codegen --lang ts {}` writes now; run that and commit the result",
                    path.display(),
                    args.file.display()
                )))
            }
        }
    }
}

/// The TypeScript module for a registry: each flag's value type (a union of its variants' or allowed values where it
/// has them), its registry default, and an accessor that reads through any client with `get(name, fallback)`.
fn typescript(registry: &Registry, file: &str) -> CommandResult<String> {
    let json = |value: &toml::Value| serde_json::to_string(value).map_err(|error| Failure::Usage(error.to_string()));
    let mut types = String::new();
    let mut defaults = String::new();
    for entry in &registry.flags {
        let name = serde_json::to_string(&entry.name).map_err(|error| Failure::Usage(error.to_string()))?;
        let variants: Vec<String> =
            entry.variants.iter().flatten().filter_map(|variant| variant.get("value")).map(json).collect::<CommandResult<_>>()?;
        let value_type = match entry.flag_type.as_str() {
            "boolean" => "boolean".to_owned(),
            "number" => "number".to_owned(),
            "json" => "unknown".to_owned(),
            "string" if !variants.is_empty() => variants.join(" | "),
            "string" => match &entry.allowed_values {
                Some(allowed) if !allowed.is_empty() => {
                    allowed.iter().map(|value| serde_json::to_string(value).unwrap_or_default()).collect::<Vec<_>>().join(" | ")
                }
                _ => "string".to_owned(),
            },
            other => {
                return Err(Failure::Usage(format!("{}: type `{other}` is unknown; accepted: boolean, string, number, json", entry.name)));
            }
        };
        let default = match (&entry.default, entry.flag_type.as_str()) {
            (Some(value), _) => json(value)?,
            (None, "boolean") => "false".to_owned(),
            (None, "number") => "0".to_owned(),
            (None, "json") => "{}".to_owned(),
            (None, _) => variants.first().cloned().unwrap_or_else(|| "\"\"".to_owned()),
        };
        if let Some(description) = &entry.description {
            types.push_str(&format!("  /** {} */\n", description.replace("*/", "* /")));
        }
        types.push_str(&format!("  {name}: {value_type};\n"));
        defaults.push_str(&format!("  {name}: {default},\n"));
    }
    Ok(format!(
        "// Generated by `vexil codegen --lang ts {file}`: do not edit. Run it again when the registry changes;\n\
         // `vexil codegen --lang ts {file} --check <this file>` fails when this file is stale.\n\
         \n\
         /** Every flag of the registry and the type of the value it serves. */\n\
         export interface FeatureFlags {{\n{types}}}\n\
         \n\
         /** A flag's name: a misspelt one does not compile. */\n\
         export type FlagName = keyof FeatureFlags;\n\
         \n\
         /** The registry defaults: the last layer of the override priority, what an application serves when nothing else answers. */\n\
         export const featureFlagDefaults: {{ readonly [F in FlagName]: FeatureFlags[F] }} = {{\n{defaults}}};\n\
         \n\
         /** Anything that answers a flag with a fallback (a Vexil client, an OpenFeature client wrapped in one function). */\n\
         export interface FlagReader {{\n  get(flag: string, fallback: unknown): unknown;\n}}\n\
         \n\
         /** A flag's value through `reader`, typed, with the registry default as the fallback. */\n\
         export function flag<F extends FlagName>(reader: FlagReader, name: F): FeatureFlags[F] {{\n\
         \x20 return reader.get(name, featureFlagDefaults[name]) as FeatureFlags[F];\n}}\n"
    ))
}

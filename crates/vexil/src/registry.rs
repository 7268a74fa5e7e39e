//! `vexil apply flags.toml`: the definitions registry kept with the application's code.
//!
//! The file lists flags as `[[flag]]` tables (name, type, default, description, owner, tags,
//! criticality, variants, allowed_values, min, max, deprecated). Applying creates new flags, updates
//! changed metadata, reports flags the server has that the file does not, and archives those only with `--prune`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::{ApplyArgs, Output};
use crate::client::{CommandResult, Failure, segment};
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

/// The names of the fields a definition patch changes.
fn patch_fields(changes: &serde_json::Map<String, Value>) -> String {
    changes.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Applies the registry file. A definition change that alters what a protected environment serves is a change to
/// that environment: it needs `--reason` and confirmation (`--yes` without a terminal), like any other.
pub fn apply(context: &Context, args: ApplyArgs) -> CommandResult {
    let text =
        std::fs::read_to_string(&args.file).map_err(|error| Failure::Usage(format!("cannot read {}: {error}", args.file.display())))?;
    let registry: Registry =
        toml::from_str(&text).map_err(|error| Failure::Usage(format!("{} is not a valid registry: {error}", args.file.display())))?;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &registry.flags {
        if !seen.insert(entry.name.clone()) {
            return Err(Failure::Usage(format!("{} defines {} twice", args.file.display(), entry.name)));
        }
    }
    let listing = context.client.get_query("/api/flags", &[("archived", "true".to_owned())])?.body;
    let existing: BTreeMap<String, Value> = listing["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|flag| (flag["name"].as_str().unwrap_or_default().to_owned(), flag.clone()))
        .collect();
    let (mut created, mut updated, mut unchanged, mut missing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in &registry.flags {
        let body = entry.body()?;
        match existing.get(&entry.name) {
            None => {
                if !args.dry_run {
                    let mut create = body.clone();
                    create.insert("name".into(), json!(entry.name));
                    create.insert("type".into(), json!(entry.flag_type));
                    context.client.post("/api/flags", &Value::Object(create))?;
                }
                created.push(entry.name.clone());
            }
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
                // The definition the changes were computed against (and the dry run judged).
                let mut version = current["version"].as_u64();
                if current["archived"] == Value::Bool(true) && !args.dry_run {
                    let unarchived = context
                        .client
                        .post(&format!("/api/flags/{}/unarchive", segment(&entry.name)), &json!({"reason": args.confirm.reason}))?;
                    version = unarchived.body["version"].as_u64();
                }
                if changes.is_empty() && current["archived"] != Value::Bool(true) {
                    unchanged.push(entry.name.clone());
                } else {
                    let path = format!("/api/flags/{}", segment(&entry.name));
                    let mut serves = Vec::new();
                    if !changes.is_empty() {
                        // A definition change can alter what an environment serves; the server says where.
                        let mut dry_run = changes.clone();
                        dry_run.insert("dry_run".into(), json!(true));
                        let impact = context.client.patch(&path, &Value::Object(dry_run))?.body;
                        let serving: Vec<&Value> =
                            impact["affects"].as_array().into_iter().flatten().filter(|affected| affected["effect"] == "serving").collect();
                        let key_of = |affected: &&Value| affected["environment"].as_str().map(str::to_owned);
                        serves = serving.iter().filter_map(key_of).collect();
                        let protected: Vec<String> =
                            serving.iter().filter(|affected| affected["protected"] == true).filter_map(key_of).collect();
                        if !args.dry_run {
                            let mut patch = changes.clone();
                            // A reason goes only with a protected change the person confirmed. When the dry run named
                            // none, the edit goes without one, pinned to the definition the dry run judged: should a
                            // protected environment start to depend on it meanwhile (another admin, a rollout step),
                            // the server refuses it for want of a reason instead of taking a reason nobody gave.
                            if let Some(environment) = protected.first() {
                                let reason = prompt::protected_change(
                                    args.confirm.reason.clone(),
                                    args.confirm.yes,
                                    false,
                                    environment,
                                    true,
                                    &format!("{} changes what {} serves ({})", entry.name, protected.join(", "), patch_fields(&changes)),
                                )?;
                                patch.insert("reason".into(), json!(reason));
                            }
                            context.client.patch_if_match(&path, &Value::Object(patch), version)?;
                        }
                    }
                    let serving = if serves.is_empty() { String::new() } else { format!("; changes what {} serves", serves.join(", ")) };
                    updated.push(format!("{} ({}{serving})", entry.name, patch_fields(&changes)));
                }
            }
        }
    }
    for (name, flag) in &existing {
        if flag["archived"] != Value::Bool(true) && !seen.contains(name) {
            missing.push(name.clone());
        }
    }
    let mut archived = Vec::new();
    if args.prune && !args.dry_run {
        for name in &missing {
            context.client.post(&format!("/api/flags/{}/archive", segment(name)), &json!({"reason": args.confirm.reason}))?;
            archived.push(name.clone());
        }
    }
    let report = json!({"created": created, "updated": updated, "unchanged": unchanged, "missing": missing, "archived": archived, "dry_run": args.dry_run});
    match context.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Output::Text => {
            let prefix = if args.dry_run { "would be " } else { "" };
            for (label, list) in [("created", &created), ("updated", &updated), ("unchanged", &unchanged)] {
                if !list.is_empty() {
                    println!("{prefix}{label}: {}", list.join(", "));
                }
            }
            if !missing.is_empty() {
                if args.prune && !args.dry_run {
                    println!("archived (not in the file): {}", missing.join(", "));
                } else {
                    println!("not in the file (archive them with --prune): {}", missing.join(", "));
                }
            }
        }
    }
    Ok(())
}

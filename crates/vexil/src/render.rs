//! Text output for people: the environment matrix, the seed's tree, diffs and audit records.

use serde_json::Value;

/// `✓ Enabled`, `✗ Disabled`, `✓ 30%`, `✓ "blue"`, `✓ variant treatment (+2 rules)`.
pub fn summary(state: &Value, flag_type: &str) -> String {
    if !state.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return "✗ Disabled".into();
    }
    let mut text = String::from("✓ ");
    let rollout = state.get("split").and_then(|split| split.get("buckets")).and_then(Value::as_array).map(|buckets| {
        buckets
            .iter()
            .filter(|bucket| bucket.pointer("/serve/value") == Some(&Value::Bool(true)))
            .filter_map(|bucket| bucket.get("weight").and_then(Value::as_u64))
            .sum::<u64>()
    });
    match (rollout, flag_type) {
        (Some(thousandths), "boolean") => text.push_str(&format!("{}%", percent(thousandths))),
        (Some(_), _) => text.push_str("split"),
        (None, "boolean") => match state.pointer("/serve/value") {
            Some(Value::Bool(false)) => text.push_str("Enabled (serving false)"),
            Some(Value::Bool(true)) => text.push_str("Enabled"),
            _ => text.push_str(&serve_text(state.get("serve"))),
        },
        (None, _) => text.push_str(&serve_text(state.get("serve"))),
    }
    let rules = state.get("rules").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let targets = state.get("targets").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let mut extras = Vec::new();
    if targets > 0 {
        extras.push(format!("{targets} target{}", if targets == 1 { "" } else { "s" }));
    }
    if rules > 0 {
        extras.push(format!("{rules} rule{}", if rules == 1 { "" } else { "s" }));
    }
    if !extras.is_empty() {
        text.push_str(&format!(" (+{})", extras.join(", ")));
    }
    text
}

fn serve_text(serve: Option<&Value>) -> String {
    match serve {
        Some(serve) if serve.get("variant").is_some() => format!("variant {}", serve["variant"].as_str().unwrap_or("?")),
        Some(serve) => short(serve.get("value").unwrap_or(&Value::Null)),
        None => "?".into(),
    }
}

pub use vexil_core::state::format_percent as percent;

/// A value on one line, cut to 40 characters.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 { format!("{}…", text.chars().take(39).collect::<String>()) } else { text }
}

fn pad(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count >= width { text.to_owned() } else { format!("{text}{}", " ".repeat(width - count)) }
}

/// The seed's switcher as a table: one row per flag, one column per environment.
pub fn matrix(response: &Value) -> String {
    let environments: Vec<(&str, String)> = response["environments"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|environment| {
                    (environment["key"].as_str().unwrap_or("?"), environment["title"].as_str().unwrap_or("?").to_uppercase())
                })
                .collect()
        })
        .unwrap_or_default();
    let flags = response["flags"].as_array().cloned().unwrap_or_default();
    if flags.is_empty() {
        return "no flags defined yet; define one with `vexil define ui.new_feature --type boolean`\n".into();
    }
    let mut rows: Vec<Vec<String>> =
        vec![std::iter::once("FLAG".to_owned()).chain(environments.iter().map(|(_, title)| title.clone())).collect()];
    for flag in &flags {
        let flag_type = flag["type"].as_str().unwrap_or("boolean");
        let mut row = vec![format!(
            "{}{}",
            flag["name"].as_str().unwrap_or("?"),
            if flag["archived"] == Value::Bool(true) { " (archived)" } else { "" }
        )];
        for (key, _) in &environments {
            row.push(flag["environments"].get(*key).map(|state| summary(state, flag_type)).unwrap_or_else(|| "-".into()));
        }
        rows.push(row);
    }
    table(&rows)
}

/// Aligns rows into columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| rows.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().enumerate().map(|(column, cell)| pad(cell, widths[column] + 2)).collect();
        out.push_str(cells.concat().trim_end());
        out.push('\n');
    }
    out
}

/// The seed's tree: the flag, then `├── Dev:     ✓ Enabled` per environment.
pub fn tree(flag: &Value, environments: &[Value]) -> String {
    let flag_type = flag["type"].as_str().unwrap_or("boolean");
    let mut out = format!("{}\n", flag["name"].as_str().unwrap_or("?"));
    let width = environments.iter().map(|environment| environment["title"].as_str().unwrap_or("").chars().count()).max().unwrap_or(0) + 1;
    for (index, environment) in environments.iter().enumerate() {
        let branch = if index + 1 == environments.len() { "└──" } else { "├──" };
        let title = format!("{}:", environment["title"].as_str().unwrap_or("?"));
        let key = environment["key"].as_str().unwrap_or("?");
        let state = flag["environments"].get(key).map(|state| summary(state, flag_type)).unwrap_or_else(|| "-".into());
        out.push_str(&format!("{branch} {} {state}\n", pad(&title, width)));
    }
    out
}

/// A state in detail.
pub fn state_detail(flag: &str, environment: &str, state: &Value) -> String {
    let mut out = format!("{flag} in {environment}\n");
    out.push_str(&format!("  enabled:    {}\n", state["enabled"]));
    out.push_str(&format!("  serve:      {}\n", short(&state["serve"])));
    if let Some(split) = state.get("split").filter(|split| !split.is_null()) {
        out.push_str(&format!("  split:      {}\n", short(split)));
    }
    for (index, target) in state["targets"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!("  target {}:   {} → {}\n", index + 1, short(&target["keys"]), short(&target["serve"])));
    }
    for (index, rule) in state["rules"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!("  rule {}:     {} → {}\n", index + 1, short(&rule["conditions"]), short(&rule["serve"])));
    }
    out.push_str(&format!("  version:    {}\n", state["version"]));
    out.push_str(&format!(
        "  changed by: {} at {}\n",
        state["updated_by"].as_str().unwrap_or("?"),
        state["updated_at"].as_str().unwrap_or("?")
    ));
    out
}

/// A list of field changes, `  enabled: false → true`.
pub fn diff(changes: &Value) -> String {
    let mut out = String::new();
    for change in changes.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {} → {}\n",
            change["path"].as_str().unwrap_or("?"),
            short(&change["before"]),
            short(&change["after"])
        ));
    }
    if out.is_empty() {
        out.push_str("  (no difference)\n");
    }
    out
}

/// Audit records, newest first, one line each plus the reason.
pub fn audit(entries: &Value) -> String {
    let mut rows = vec![vec![
        "TIME".to_owned(),
        "USER".into(),
        "ACTION".into(),
        "FLAG".into(),
        "ENVIRONMENT".into(),
        "CHANGE".into(),
        "REASON".into(),
    ]];
    for entry in entries.as_array().into_iter().flatten() {
        let text = |field: &str| entry[field].as_str().unwrap_or("-").to_owned();
        let mut action = text("action");
        if let Some(from) = entry["from_environment"].as_str() {
            action = format!("{action} (from {from})");
        }
        rows.push(vec![text("timestamp"), text("user"), action, text("flag"), text("environment"), change(entry), text("reason")]);
    }
    if rows.len() == 1 {
        return "no audit records match\n".into();
    }
    table(&rows)
}

/// What an audit record changed, short: a state's before → after, or the definition fields an edit changed (for an
/// environment's record of a definition change, what it served through).
fn change(entry: &Value) -> String {
    const BOOKKEEPING: [&str; 4] = ["version", "updated_at", "updated_by", "created_at"];
    let fields = |before: &Value, after: &Value| -> Vec<String> {
        let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else { return Vec::new() };
        let mut names: Vec<&String> = before.keys().chain(after.keys()).filter(|name| !BOOKKEEPING.contains(&name.as_str())).collect();
        names.sort();
        names.dedup();
        names.into_iter().filter(|name| before.get(*name) != after.get(*name)).cloned().collect()
    };
    if entry["definition"].is_object() {
        return format!("definition: {}", fields(&entry["definition"]["before"], &entry["definition"]["after"]).join(", "));
    }
    let (before, after) = (&entry["before"], &entry["after"]);
    if after.get("enabled").is_none() {
        return match fields(before, after).as_slice() {
            [] => "-".to_owned(),
            changed => changed.join(", "),
        };
    }
    let flag_type = if after.pointer("/serve/value").is_some_and(Value::is_boolean) { "boolean" } else { "other" };
    match before.get("enabled") {
        Some(_) => format!("{} → {}", summary(before, flag_type), summary(after, flag_type)),
        None => summary(after, flag_type),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summaries_read_like_the_seed() {
        assert_eq!(summary(&json!({"enabled": true, "serve": {"value": true}}), "boolean"), "✓ Enabled");
        assert_eq!(summary(&json!({"enabled": false, "serve": {"value": true}}), "boolean"), "✗ Disabled");
        let rollout = json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [
            {"serve": {"value": true}, "weight": 12500}, {"serve": {"value": false}, "weight": 87500}]}});
        assert_eq!(summary(&rollout, "boolean"), "✓ 12.5%");
        assert_eq!(summary(&json!({"enabled": true, "serve": {"variant": "b"}, "rules": [{}]}), "string"), "✓ variant b (+1 rule)");
    }

    #[test]
    fn the_tree_matches_the_seed() {
        let flag = json!({"name": "ui.new_voice_panel", "type": "boolean", "environments": {
            "dev": {"enabled": true, "serve": {"value": true}},
            "staging": {"enabled": true, "serve": {"value": true}},
            "prod": {"enabled": false, "serve": {"value": true}}}});
        let environments =
            [json!({"key": "dev", "title": "Dev"}), json!({"key": "staging", "title": "Staging"}), json!({"key": "prod", "title": "Prod"})];
        assert_eq!(
            tree(&flag, &environments),
            "ui.new_voice_panel\n├── Dev:     ✓ Enabled\n├── Staging: ✓ Enabled\n└── Prod:    ✗ Disabled\n"
        );
    }
}

//! Text output for people: the environment matrix, the seed's tree, a state in detail, diffs and audit records.
//!
//! What a state serves is never worked out here: every place shows the server's words for it (the `summary` and
//! `summaries` fields, `vexil_core::describe`, pinned by `spec/summary.json`), the same the panel shows, behind a
//! `✓` when the flag is on and a `✗` when it is off.

use serde_json::Value;

use crate::paint;

/// `✓ Enabled · rolled out to 30 %`, `✗ Disabled`: the server's summary of a state behind its mark, coloured on a terminal.
pub fn marked(state: &Value, summary: Option<&str>) -> String {
    let enabled = state.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    let summary = summary.unwrap_or(if enabled { "Enabled" } else { "Disabled" });
    if enabled { paint::on(&format!("✓ {summary}")) } else { paint::off(&format!("✗ {summary}")) }
}

/// A flag's state in `environment` as the matrix and the tree show it.
fn cell(flag: &Value, environment: &str) -> String {
    match flag["environments"].get(environment) {
        Some(state) => marked(state, flag["summaries"][environment].as_str()),
        None => "-".into(),
    }
}

pub use vexil_core::state::format_percent as percent;

/// A value on one line, cut to 40 characters.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 { format!("{}…", text.chars().take(39).collect::<String>()) } else { text }
}

/// How wide `text` shows: its characters, without colour codes.
fn width(text: &str) -> usize {
    let mut count = 0;
    let mut escaped = false;
    for c in text.chars() {
        match (escaped, c) {
            (false, '\x1b') => escaped = true,
            (true, 'm') => escaped = false,
            (true, _) => {}
            (false, _) => count += 1,
        }
    }
    count
}

fn pad(text: &str, wanted: usize) -> String {
    let count = width(text);
    if count >= wanted { text.to_owned() } else { format!("{text}{}", " ".repeat(wanted - count)) }
}

/// `1 flag`, `2 flags`.
pub fn count(amount: usize, noun: &str) -> String {
    format!("{amount} {noun}{}", if amount == 1 { "" } else { "s" })
}

/// The seed's switcher: a table, one row per flag and one column per environment, or, when that is wider than
/// `width` (a terminal's), each flag as the seed's tree, one environment per line.
pub fn matrix_within(response: &Value, width: Option<usize>) -> String {
    let table = matrix(response);
    let widest = table.lines().map(self::width).max().unwrap_or(0);
    match width {
        Some(width) if widest > width => {
            let environments = response["environments"].as_array().cloned().unwrap_or_default();
            let flags = response["flags"].as_array().cloned().unwrap_or_default();
            flags.iter().map(|flag| tree(flag, &environments)).collect::<Vec<_>>().join("\n")
        }
        _ => table,
    }
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
        let mut row = vec![format!(
            "{}{}",
            flag["name"].as_str().unwrap_or("?"),
            if flag["archived"] == Value::Bool(true) { " (archived)" } else { "" }
        )];
        row.extend(environments.iter().map(|(key, _)| cell(flag, key)));
        rows.push(row);
    }
    table(&rows)
}

/// Aligns rows into columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|column| rows.iter().filter_map(|row| row.get(column)).map(|cell| width(cell)).max().unwrap_or(0)).collect();
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
    let mut out = format!("{}\n", paint::strong(flag["name"].as_str().unwrap_or("?")));
    let widest = environments.iter().map(|environment| environment["title"].as_str().unwrap_or("").chars().count()).max().unwrap_or(0) + 1;
    for (index, environment) in environments.iter().enumerate() {
        let branch = if index + 1 == environments.len() { "└──" } else { "├──" };
        let title = format!("{}:", environment["title"].as_str().unwrap_or("?"));
        let state = cell(flag, environment["key"].as_str().unwrap_or("?"));
        out.push_str(&format!("{branch} {} {state}\n", pad(&title, widest)));
    }
    out
}

/// What a flag is, under its tree: type, default, variants, owner, tags, description.
pub fn definition(flag: &Value) -> String {
    let mut lines = Vec::new();
    let text = |field: &str| flag[field].as_str().filter(|text| !text.is_empty()).map(str::to_owned);
    lines.push(("type", flag["type"].as_str().unwrap_or("?").to_owned()));
    lines.push(("default", flag["default"].to_string()));
    let variants: Vec<String> = flag["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|variant| format!("{} = {}", variant["name"].as_str().unwrap_or("?"), short(&variant["value"])))
        .collect();
    if !variants.is_empty() {
        lines.push(("variants", variants.join(", ")));
    }
    if let Some(owner) = text("owner") {
        lines.push(("owner", owner));
    }
    let tags: Vec<&str> = flag["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !tags.is_empty() {
        lines.push(("tags", tags.join(", ")));
    }
    if flag["archived"] == Value::Bool(true) {
        lines.push(("archived", "yes: its states are frozen (`vexil unarchive` to change them again)".to_owned()));
    }
    let mut out = String::new();
    for (name, value) in lines {
        out.push_str(&format!("  {} {value}\n", paint::faint(&format!("{:<9}", format!("{name}:")))));
    }
    if let Some(description) = text("description") {
        out.push_str(&format!("\n{description}\n"));
    }
    out
}

/// A state in detail, in the order evaluation reads it (`vexil get FLAG --env E`): the summary, the targets and rules,
/// what everyone else gets, what it serves while off, a rollout plan, the guard's watch, and who changed it when.
pub fn state_detail(flag: &Value, environment: &str, answer: &Value, rollout: Option<&Value>) -> String {
    let state = &answer["state"];
    let explained = &flag["explained"][environment];
    let name = flag["name"].as_str().unwrap_or("?");
    let mut out = format!("{} in {}: {}\n", paint::strong(name), paint::strong(environment), marked(state, answer["summary"].as_str()));
    let line = |out: &mut String, label: &str, value: &str| out.push_str(&format!("  {} {value}\n", paint::faint(&format!("{label:<14}"))));
    let listed =
        |field: &str| explained[field].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>();
    let targets = listed("targets");
    for (index, target) in targets.iter().enumerate() {
        line(&mut out, if index == 0 { "targets:" } else { "" }, target);
    }
    let rules = listed("rules");
    for (index, rule) in rules.iter().enumerate() {
        line(&mut out, if index == 0 { "rules:" } else { "" }, &format!("{}. {rule}", index + 1));
    }
    let otherwise = explained["otherwise"].as_str().unwrap_or("?");
    let label = if targets.is_empty() && rules.is_empty() { "serves:" } else { "everyone else:" };
    line(&mut out, label, &format!("{otherwise}{}", if state["enabled"] == Value::Bool(true) { "" } else { " (when enabled)" }));
    line(&mut out, "when off:", explained["off"].as_str().unwrap_or("?"));
    if let Some(plan) = rollout.and_then(|status| status["plan"].as_object()) {
        let steps: Vec<String> = plan["steps"].as_array().into_iter().flatten().filter_map(Value::as_u64).map(percent).collect();
        let when = if plan["paused"] == Value::Bool(true) {
            "paused (`vexil rollout resume`)".to_owned()
        } else {
            format!("next step due at {}", plan["next_at"].as_str().unwrap_or("?"))
        };
        line(&mut out, "rollout:", &format!("step {} of {} ({} %), {when}", plan["next_step"], steps.len(), steps.join(" → ")));
        if let Some(waiting) = rollout.and_then(|status| status["waiting"].as_str()) {
            line(&mut out, "", waiting);
        }
    }
    if let Some(report) = rollout.map(|status| &status["guard"]).filter(|report| report.is_object()) {
        let decision = report["decision"].as_str().unwrap_or("?");
        let until = report["until"].as_str().map(|until| format!(" until {until}")).unwrap_or_default();
        line(&mut out, "guard:", &format!("watching{until}: {decision}"));
    }
    line(
        &mut out,
        "changed:",
        &format!(
            "version {} by {} at {}",
            state["version"],
            state["updated_by"].as_str().unwrap_or("?"),
            state["updated_at"].as_str().unwrap_or("?")
        ),
    );
    out
}

/// What a change does in words, a line each (the server's `described`), or, from an older server, its field changes.
pub fn described(words: &Value, changes: &Value) -> String {
    let lines: Vec<&str> = words.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if lines.is_empty() {
        return diff(changes);
    }
    lines.iter().map(|line| format!("  {line}\n")).collect()
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
/// Audit records as a table, or, when that is wider than `width` (a terminal's), each record as a heading line (time, who,
/// what, where) with what it changed and why beneath, whole.
pub fn audit_within(entries: &Value, width: Option<usize>) -> String {
    let table = audit_table(entries);
    let widest = table.lines().map(self::width).max().unwrap_or(0);
    let Some(width) = width.filter(|width| widest > *width) else { return table };
    let mut out = String::new();
    for entry in entries.as_array().into_iter().flatten() {
        let text = |field: &str| entry[field].as_str().unwrap_or("-").to_owned();
        let place = entry["environment"].as_str().map(|environment| format!(" in {environment}")).unwrap_or_default();
        out.push_str(&format!(
            "{} {} {} {}{place}\n",
            paint::faint(&text("timestamp")),
            text("user"),
            paint::strong(&text("action")),
            subject(entry)
        ));
        let changed = change(entry);
        for line in wrap(&changed, width.saturating_sub(4).max(20)).iter().filter(|_| changed != "-") {
            out.push_str(&format!("    {line}\n"));
        }
        if let Some(reason) = entry["reason"].as_str() {
            for line in wrap(&format!("reason: {reason}"), width.saturating_sub(4).max(20)) {
                out.push_str(&format!("    {}\n", paint::faint(&line)));
            }
        }
    }
    out
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn audit_table(entries: &Value) -> String {
    let mut rows =
        vec![vec!["TIME".to_owned(), "USER".into(), "ACTION".into(), "FLAG / USER".into(), "ENV".into(), "CHANGE".into(), "REASON".into()]];
    for entry in entries.as_array().into_iter().flatten() {
        let text = |field: &str| entry[field].as_str().unwrap_or("-").to_owned();
        let mut action = text("action");
        if let Some(from) = entry["from_environment"].as_str() {
            action = format!("{action} (from {from})");
        }
        // One line per record: long descriptions are cut (`-o json` has them whole, and `vexil get` the state).
        rows.push(vec![
            text("timestamp"),
            text("user"),
            action,
            subject(entry).to_owned(),
            text("environment"),
            cut(&change(entry), 70),
            cut(&text("reason"), 50),
        ]);
    }
    if rows.len() == 1 {
        return "no audit records match\n".into();
    }
    table(&rows)
}

/// What an audit record is about: its flag, or the user or token's owner a record of accounts names.
fn subject(entry: &Value) -> &str {
    entry["flag"].as_str().or_else(|| entry["after"]["email"].as_str()).or_else(|| entry["after"]["user"].as_str()).unwrap_or("-")
}

/// `text` cut to `limit` characters with `…`.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit { text.to_owned() } else { format!("{}…", text.chars().take(limit - 1).collect::<String>()) }
}

/// What an audit record changed, on one line: the server's words for it (`changes`), or the fields a record of
/// users and tokens changed.
fn change(entry: &Value) -> String {
    let words: Vec<&str> = entry["changes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !words.is_empty() {
        return words.join("; ");
    }
    let (Some(before), Some(after)) = (entry["before"].as_object(), entry["after"].as_object()) else { return "-".to_owned() };
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let changed: Vec<String> = names.into_iter().filter(|name| before.get(*name) != after.get(*name)).cloned().collect();
    if changed.is_empty() { "-".to_owned() } else { changed.join(", ") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tree_matches_the_seed_with_the_servers_words() {
        let flag = json!({"name": "ui.new_voice_panel", "type": "boolean",
            "environments": {"dev": {"enabled": true}, "staging": {"enabled": true}, "prod": {"enabled": false}},
            "summaries": {"dev": "Enabled", "staging": "Enabled · rolled out to 30 %", "prod": "Disabled"}});
        let environments =
            [json!({"key": "dev", "title": "Dev"}), json!({"key": "staging", "title": "Staging"}), json!({"key": "prod", "title": "Prod"})];
        assert_eq!(
            tree(&flag, &environments),
            "ui.new_voice_panel\n├── Dev:     ✓ Enabled\n├── Staging: ✓ Enabled · rolled out to 30 %\n└── Prod:    ✗ Disabled\n"
        );
    }

    #[test]
    fn colour_codes_take_no_room_in_a_table() {
        let rows = vec![vec!["\x1b[32m✓ on\x1b[0m".to_owned(), "x".into()], vec!["✗ off".into(), "y".into()]];
        assert_eq!(table(&rows), "\x1b[32m✓ on\x1b[0m   x\n✗ off  y\n");
        assert_eq!(count(1, "flag"), "1 flag");
        assert_eq!(count(2, "flag"), "2 flags");
    }
}

"""Writes spec/evaluation.json: evaluation cases every implementation (server, Rust SDK, panel) runs.

Expected answers are written out by hand, except which share of a split a key lands in: that is computed
here with Python's mmh3 package, an implementation of murmur3 independent of Vexil's.
Run: pip install mmh3 && python3 spec/generate_evaluation.py
"""
import json
import mmh3

def bucket(flag, key):
    return mmh3.hash(f"{flag}/{key}".encode("utf-8"), 0, signed=False) % 100000

def split_pick(flag, key, buckets):
    b = bucket(flag, key)
    upper = 0
    for value, weight in buckets:
        upper += weight
        if b < upper:
            return value
    return buckets[-1][0]

BOOL = {"name": "ui.new_feature", "type": "boolean", "default": False}
cases = []

def case(name, flag, state, context, value, reason, variant=None, error=None):
    expect = {"value": value, "reason": reason}
    if variant is not None:
        expect["variant"] = variant
    if error is not None:
        expect["error"] = error
    cases.append({"name": name, "flag": flag, "state": state, "context": context, "expect": expect})

on = {"value": True}
case("disabled boolean serves false", BOOL, {"enabled": False, "serve": on}, {"targetingKey": "u1"}, False, "DISABLED", "false")
case("enabled boolean with no targeting is static", BOOL, {"enabled": True, "serve": on}, {}, True, "STATIC", "true")
string_flag = {"name": "ui.theme", "type": "string", "default": "light"}
case("disabled string serves the default", string_flag, {"enabled": False, "serve": {"value": "dark"}}, {}, "light", "DISABLED")
case("enabled string serves its value", string_flag, {"enabled": True, "serve": {"value": "dark"}}, {}, "dark", "STATIC")
variants = {"name": "experiment.voice_v2", "type": "string", "default": "a",
            "variants": [{"name": "control", "value": "a"}, {"name": "treatment", "value": "b"}]}
case("variant served by name", variants, {"enabled": True, "serve": {"variant": "treatment"}}, {}, "b", "STATIC", "treatment")
case("disabled multivariate serves the default and names its variant", variants, {"enabled": False, "serve": {"variant": "treatment"}}, {}, "a", "DISABLED", "control")
targeted = {"enabled": True, "serve": {"value": False}, "targets": [{"keys": ["alice", "bob"], "serve": on}]}
case("listed targeting key matches", BOOL, targeted, {"targetingKey": "bob"}, True, "TARGETING_MATCH", "true")
case("unlisted key falls through as default", BOOL, targeted, {"targetingKey": "carol"}, False, "DEFAULT", "false")
case("disabled beats targets", BOOL, dict(targeted, enabled=False), {"targetingKey": "bob"}, False, "DISABLED", "false")

def rule_state(attribute, operator, values, serve=on):
    return {"enabled": True, "serve": {"value": False},
            "rules": [{"conditions": [{"attribute": attribute, "operator": operator, "values": values}], "serve": serve}]}

operator_cases = [
    ("equals", "plan", ["pro"], "pro", True), ("equals", "plan", ["pro"], "free", False),
    ("not_equals", "plan", ["free"], "pro", True), ("not_equals", "plan", ["free"], "free", False),
    ("in", "country", ["fr", "de"], "de", True), ("in", "country", ["fr", "de"], "us", False),
    ("not_in", "country", ["fr", "de"], "us", True), ("not_in", "country", ["fr", "de"], "fr", False),
    ("contains", "email", ["@asimo"], "a@asimo.io", True), ("contains", "email", ["@asimo"], "a@b.io", False),
    ("starts_with", "email", ["admin"], "admin@x.io", True), ("starts_with", "email", ["admin"], "x@admin.io", False),
    ("ends_with", "email", [".io"], "a@b.io", True), ("ends_with", "email", [".io"], "a@b.com", False),
    ("regex", "email", ["^[a-z]+@asimo\\.io$"], "pm@asimo.io", True), ("regex", "email", ["^[a-z]+@asimo\\.io$"], "PM@asimo.io", False),
    ("gt", "age", [18], 19, True), ("gt", "age", [18], 18, False),
    ("gte", "age", [18], 18, True), ("gte", "age", [18], 17.5, False),
    ("lt", "age", [18], 17, True), ("lt", "age", [18], 18, False),
    ("lte", "age", [18], 18, True), ("lte", "age", [18], 18.01, False),
    ("semver_eq", "app_version", ["2.0.0"], "2.0.0+build.7", True), ("semver_eq", "app_version", ["2.0.0"], "2.0.1", False),
    ("semver_gt", "app_version", ["2.0.0"], "2.0.1", True), ("semver_gt", "app_version", ["2.0.0"], "2.0.0-rc.1", False),
    ("semver_gte", "app_version", ["2.0.0-beta.2"], "2.0.0-beta.11", True), ("semver_gte", "app_version", ["2.0.0-beta.2"], "2.0.0-beta.1", False),
    ("semver_lt", "app_version", ["10.0.0"], "9.9.9", True), ("semver_lt", "app_version", ["10.0.0"], "10.0.0", False),
    ("semver_lte", "app_version", ["1.2.3"], "1.2.3", True), ("semver_lte", "app_version", ["1.2.3"], "not-a-version", False),
]
for operator, attribute, values, actual, matches in operator_cases:
    case(f"{operator} {values} against {actual!r} {'matches' if matches else 'does not match'}", BOOL,
         rule_state(attribute, operator, values), {"targetingKey": "u1", attribute: actual},
         matches, "TARGETING_MATCH" if matches else "DEFAULT", "true" if matches else "false")

case("a missing attribute never matches, even not_equals", BOOL, rule_state("plan", "not_equals", ["free"]), {"targetingKey": "u1"}, False, "DEFAULT", "false")
case("types do not coerce: the string 18 is not the number 18", BOOL, rule_state("age", "equals", [18]), {"age": "18"}, False, "DEFAULT", "false")
case("numeric comparisons ignore strings", BOOL, rule_state("age", "gt", [18]), {"age": "30"}, False, "DEFAULT", "false")
two_conditions = {"enabled": True, "serve": {"value": False}, "rules": [{"conditions": [
    {"attribute": "plan", "operator": "equals", "values": ["pro"]},
    {"attribute": "country", "operator": "in", "values": ["fr"]}], "serve": on}]}
case("all conditions of a rule must hold", BOOL, two_conditions, {"plan": "pro", "country": "de"}, False, "DEFAULT", "false")
case("all conditions of a rule hold", BOOL, two_conditions, {"plan": "pro", "country": "fr"}, True, "TARGETING_MATCH", "true")
ordered = {"enabled": True, "serve": {"value": "light"}, "rules": [
    {"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"value": "dark"}},
    {"conditions": [{"attribute": "plan", "operator": "in", "values": ["pro", "team"]}], "serve": {"value": "blue"}}]}
case("the first matching rule wins", string_flag, ordered, {"plan": "pro"}, "dark", "TARGETING_MATCH")
case("later rules still match on their own", string_flag, ordered, {"plan": "team"}, "blue", "TARGETING_MATCH")
case("targets come before rules", BOOL, dict(rule_state("plan", "equals", ["pro"], {"value": False}), targets=[{"keys": ["vip"], "serve": on}]),
     {"targetingKey": "vip", "plan": "pro"}, True, "TARGETING_MATCH", "true")

rollout = [(True, 30000), (False, 70000)]
split_state = {"enabled": True, "serve": on, "split": {"buckets": [{"serve": {"value": v}, "weight": w} for v, w in rollout]}}
for key in ["user-1", "user-2", "user-3", "user-42", "tenant:7", "ü-unicode-键"]:
    value = split_pick("ui.new_feature", key, rollout)
    case(f"30% rollout for {key} (bucket {bucket('ui.new_feature', key)})", BOOL, split_state, {"targetingKey": key}, value, "SPLIT", "true" if value else "false")
case("a split without a targeting key is an error serving the served value", BOOL, split_state, {}, True, "ERROR", "true", "TARGETING_KEY_MISSING")
weighted = [("control", 50000), ("treatment", 50000)]
weighted_state = {"enabled": True, "serve": {"variant": "control"}, "split": {"buckets": [{"serve": {"variant": v}, "weight": w} for v, w in weighted]}}
for key in ["user-1", "user-2", "user-5", "user-8"]:
    variant = split_pick("experiment.voice_v2", key, weighted)
    case(f"weighted variants for {key} (bucket {bucket('experiment.voice_v2', key)})", variants, weighted_state, {"targetingKey": key},
         {"control": "a", "treatment": "b"}[variant], "SPLIT", variant)
rule_split = {"enabled": True, "serve": {"value": False}, "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}],
              "serve": {"split": {"buckets": [{"serve": {"value": v}, "weight": w} for v, w in rollout]}}}]}
value = split_pick("ui.new_feature", "user-1", rollout)
case("a rule can serve a split", BOOL, rule_split, {"targetingKey": "user-1", "plan": "pro"}, value, "SPLIT", "true" if value else "false")
case("a rule's split is skipped when the rule does not match", BOOL, rule_split, {"targetingKey": "user-1", "plan": "free"}, False, "DEFAULT", "false")
case("a zero-weight bucket is never served", BOOL,
     {"enabled": True, "serve": on, "split": {"buckets": [{"serve": {"value": True}, "weight": 0}, {"serve": {"value": False}, "weight": 100000}]}},
     {"targetingKey": "user-1"}, False, "SPLIT", "false")

doc = {"description": "Evaluation cases: a flag definition, its state in one environment, a context, and the expected value, variant, reason and error. Generated by spec/generate_evaluation.py.", "cases": cases}
open(__file__.replace("generate_evaluation.py", "evaluation.json"), "w").write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
print(len(cases), "cases")

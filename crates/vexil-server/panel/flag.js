// The flag page (`/?view=flag&flag=ui.checkout`): one flag in every environment side by side, in the order evaluation
// reads a state (targets, rules, everyone else), with what separates two environments, its promotion and rollout, how
// an application asks for it, and its history; and the targeting editor. Loaded after panel.js, whose helpers
// (`$`, `api`, `notify`, `panel`, `mayChange`, `toggle`, `promote`, …) it uses.
"use strict";

// Every operator the API accepts, with what the editor calls it.
const OPERATORS = [
  ["equals", "is"], ["not_equals", "is not"], ["in", "is one of"], ["not_in", "is none of"], ["contains", "contains"],
  ["starts_with", "starts with"], ["ends_with", "ends with"], ["regex", "matches the regex"], ["gt", ">"], ["gte", "≥"],
  ["lt", "<"], ["lte", "≤"], ["semver_eq", "version ="], ["semver_gt", "version >"], ["semver_gte", "version ≥"],
  ["semver_lt", "version <"], ["semver_lte", "version ≤"],
];
const NUMERIC = new Set(["gt", "gte", "lt", "lte"]);
const TEXTUAL = new Set(["contains", "starts_with", "ends_with", "regex"]);

// A small element builder: h("button", { class: "small", onclick }, "text", child…).
function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// Inline SVG icons (no font or emoji needed), drawn in the text colour.
const ICONS = {
  back: "M10 3 5 8l5 5", grip: "M6 4h.01M10 4h.01M6 8h.01M10 8h.01M6 12h.01M10 12h.01", up: "M4 10l4-4 4 4",
  down: "M4 6l4 4 4-4", remove: "M4 4l8 8M12 4l-8 8", shield: "M8 2 3 4v4c0 3 2.2 5 5 6 2.8-1 5-3 5-6V4z",
  copy: "M5 5h7v8H5zM3 3h7v1", promote: "M3 8h9M9 5l3 3-3 3", pause: "M6 4v8M10 4v8",
  rollout: "M13 8a5 5 0 1 1-1.5-3.5M13 3v2.5h-2.5",
};
function icon(name) {
  const namespace = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(namespace, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(namespace, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

// Opens a flag's page; `push` adds a history entry (false when the URL already says so).
async function openFlag(name, push = true) {
  let flag;
  try { flag = await api("GET", `/api/flags/${encodeURIComponent(name)}`); } catch (error) { notify(error.message); return; }
  panel.flagPage = flag.name;
  panel.flags.set(flag.name, flag);
  panel.guards = await guardReports(flag);
  renderFlag(flag);
  show("flag-view");
  writeLocation(push);
  await flagHistory(flag.name);
}

// A change to the flag on show (from the stream): the page reloads it, keeping the place.
let flagRefresh = null;
function flagChanged(name) {
  if (panel.flagPage !== name || $("flag-view").hidden || flagRefresh) return;
  flagRefresh = setTimeout(async () => {
    flagRefresh = null;
    try {
      const flag = await api("GET", `/api/flags/${encodeURIComponent(name)}`);
      panel.flags.set(flag.name, flag);
      panel.guards = await guardReports(flag);
      // Redrawn only when something shown changed, so the element a user is on stays where it is.
      if (panel.flagPage === name && !$("flag-view").hidden && JSON.stringify([flag, panel.guards]) !== panel.flagShown) { renderFlag(flag); await flagHistory(name); }
    } catch (error) { notify(error.message); }
  }, 50);
}

// What the guard last saw of the flag in each environment (it watches rollouts, and changes in protected environments
// for a while after them).
async function guardReports(flag) {
  const answers = await Promise.all(panel.environments.map((environment) =>
    api("GET", `/api/flags/${encodeURIComponent(flag.name)}/environments/${environment.key}/guard`).catch(() => null)));
  return Object.fromEntries(panel.environments.map((environment, index) => [environment.key, answers[index]]));
}

function guardLine(answer, state) {
  if (!answer || !answer.watched) return null;
  const report = answer.report;
  // A change the guard does not judge (a flag just defined, a disable, a rollback) is no watch worth a line.
  if (!report.comparisons.length && !report.step && report.version === (state && state.version) && report.decision !== "waiting for data") return null;
  // Its last look was at an earlier state: what it said then is not about this one.
  if (state && report.version !== state.version) {
    return h("p", { class: "guard-line", "data-guard": "" }, icon("shield"), ` Guard: will look at this change within ${answer.settings.check_seconds} s`);
  }
  const what = report.watching === "rollout" ? "watching the rollout" : `watching the change until ${when(report.until)}`;
  return h("p", { class: `guard-line${report.decision === "rolled back" ? " off" : ""}`, "data-guard": "" }, icon("shield"), ` Guard: ${report.decision} (${what})`);
}

function renderFlag(flag) {
  panel.flagShown = JSON.stringify([flag, panel.guards]);
  const admin = panel.me.role === "admin";
  const canDefine = panel.me.role !== "viewer";
  $("flag-title").textContent = flag.name;
  const badges = [h("span", { class: "tag" }, flag.type), h("span", { class: `tag criticality-${flag.criticality}` }, `${flag.criticality} criticality`)];
  if (flag.deprecated) badges.push(h("span", { class: "tag warn" }, "deprecated"));
  if (flag.archived) badges.push(h("span", { class: "tag warn" }, "archived"));
  $("flag-badges").replaceChildren(...badges);
  $("flag-description").textContent = flag.description || "No description.";
  const value = (v) => (flag.type === "string" ? JSON.stringify(v) : JSON.stringify(v));
  const facts = [
    ["Default (registry)", value(flag.default)], ["Owner", flag.owner || "nobody named"], ["Tags", (flag.tags || []).join(", ") || "none"],
    ["Category", flag.category], ["Defined", `${flag.created_at.slice(0, 10)} · version ${flag.version}`],
  ];
  if (flag.allowed_values) facts.push(["Allowed values", flag.allowed_values.join(", ")]);
  if (flag.min !== undefined && flag.min !== null) facts.push(["Minimum", String(flag.min)]);
  if (flag.max !== undefined && flag.max !== null) facts.push(["Maximum", String(flag.max)]);
  $("flag-facts").replaceChildren(...facts.flatMap(([term, text]) => [h("dt", {}, term), h("dd", {}, text)]));
  const variants = flag.variants || [];
  $("flag-variants").replaceChildren(variants.length
    ? h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Variant"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "What it is for"))),
      h("tbody", {}, variants.map((variant) => h("tr", {}, h("th", { scope: "row" }, variant.name), h("td", {}, h("code", {}, JSON.stringify(variant.value))), h("td", {}, variant.description || "")))))
    : h("p", { class: "muted" }, "No variants: states serve values of the flag's type."));
  const edit = $("flag-edit");
  edit.disabled = !canDefine;
  edit.setAttribute("aria-label", `Edit ${flag.name}`);
  edit.title = flag.description || "Edit the definition";
  edit.onclick = () => editDefinition(flag);
  const archive = $("flag-archive");
  archive.textContent = flag.archived ? "Unarchive" : "Archive…";
  archive.disabled = !canDefine;
  archive.onclick = () => archiveFlag(flag);
  $("flag-define-note").hidden = canDefine;
  $("flag-environments").replaceChildren(...panel.environments.map((environment) => environmentCard(flag, environment, admin)));
  renderCompare(flag);
  renderSnippet(flag);
  renderTriggers(flag);
  // While the guard watches, its verdict moves without the flag changing: look again every 15 s.
  clearTimeout(panel.guardTimer);
  if (Object.values(panel.guards || {}).some((answer) => answer && answer.watched)) panel.guardTimer = setTimeout(() => flagChanged(flag.name), 15000);
}

// One environment's column: its switch, then the state in evaluation order, then what can be done there.
function environmentCard(flag, environment, admin) {
  const state = flag.environments[environment.key];
  const explained = (flag.explained || {})[environment.key];
  const refusal = mayChange(environment);
  const enabled = Boolean(state && state.enabled);
  const switchButton = h("button", {
    type: "button", class: "switch", role: "switch", "aria-checked": String(enabled), disabled: Boolean(refusal) || flag.archived,
    "aria-label": `${flag.name} in ${environment.name}`, title: refusal || (enabled ? `Turn off in ${environment.name}` : `Turn on in ${environment.name}`),
    onclick: () => toggle(flag, environment, !enabled),
  }, h("span", { class: "knob" }));
  const list = (items, ordered, empty) => (items.length
    ? h(ordered ? "ol" : "ul", { class: "lines" }, items.map((item) => h("li", {}, item)))
    : h("p", { class: "muted" }, empty));
  const card = h("article", { class: `env-card${environment.protected ? " protected" : ""}`, dataset: { environment: environment.key } },
    h("header", {},
      h("h3", {}, environment.title),
      environment.protected ? h("span", { class: "protected-mark" }, icon("shield"), " protected") : null),
    h("div", { class: "switch-row" }, switchButton,
      h("span", { class: `summary ${enabled ? "on" : "off"}`, "data-summary": "" }, (explained && explained.summary) || summary(flag, environment.key))),
    guardLine((panel.guards || {})[environment.key], state),
    refusal ? h("p", { class: "refusal" }, refusal) : null,
    h("dl", { class: "state-lines" },
      h("dt", {}, "Targets"), h("dd", {}, list(explained ? explained.targets : [], false, "nobody individually")),
      h("dt", {}, "Rules, first match wins"), h("dd", {}, list(explained ? explained.rules : [], true, "none")),
      h("dt", {}, "Everyone else"), h("dd", { "data-otherwise": "" }, explained ? explained.otherwise : ""),
      h("dt", {}, "While off"), h("dd", {}, explained ? explained.off : "")),
    state ? h("p", { class: "meta" }, `Version ${state.version} · changed by ${who(state.updated_by)} ${ago(state.updated_at)}`,
      h("time", { datetime: state.updated_at, title: when(state.updated_at) }, ` (${when(state.updated_at)})`)) : null);
  const actions = h("div", { class: "card-actions" });
  actions.append(h("button", {
    type: "button", disabled: Boolean(refusal) || flag.archived, title: refusal || undefined,
    "aria-label": `Edit targeting of ${flag.name} in ${environment.name}`, onclick: () => editTargeting(flag, environment),
  }, "Edit targeting…"));
  if (flag.type === "boolean") {
    const plan = state && state.rollout;
    actions.append(h("button", {
      type: "button", "aria-label": `${plan ? "Rollout" : "Guard"} of ${flag.name} in ${environment.name}`,
      onclick: () => openPlan(flag, environment),
    }, plan ? `Rollout: step ${plan.next_step} of ${plan.steps.length}${plan.paused ? " (paused)" : ""}` : "Guard and metrics"));
    if (!plan) {
      actions.append(h("button", {
        type: "button", disabled: Boolean(refusal) || flag.archived, title: refusal || undefined,
        "aria-label": `Start a rollout of ${flag.name} in ${environment.name}`, onclick: () => startRollout(flag, environment),
      }, "Start a rollout…"));
    }
  }
  const position = panel.environments.indexOf(environment);
  const next = panel.environments[position + 1];
  if (next) {
    const blocked = mayChange(next);
    actions.append(h("button", {
      type: "button", class: "promote-button", disabled: Boolean(blocked) || flag.archived, title: blocked || undefined,
      onclick: () => promote(flag, environment, next),
    }, icon("promote"), ` Promote to ${next.title}`));
  }
  card.append(actions);
  return card;
}

// Who changed a state: a person's email, or which part of Vexil.
function who(actor) {
  return { "system:guard": "the guard", "system:trigger": "a monitoring trigger", "system:rollout": "the rollout schedule" }[actor] || actor;
}

// How long ago, in the words people use: "just now", "3 min ago", "5 h ago", "2 days ago".
function ago(timestamp) {
  const seconds = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  const days = Math.floor(seconds / 86400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

function when(timestamp) {
  return timestamp.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
}

// What separates two environments: the lines that would change if the second took the first's state.
function renderCompare(flag) {
  const from = $("compare-from");
  const to = $("compare-to");
  const keep = [from.value, to.value];
  for (const select of [from, to]) select.replaceChildren(...panel.environments.map((environment) => new Option(environment.title, environment.key)));
  from.value = keep[0] && panel.environments.some((e) => e.key === keep[0]) ? keep[0] : panel.environments[0].key;
  to.value = keep[1] && panel.environments.some((e) => e.key === keep[1]) ? keep[1] : panel.environments[panel.environments.length - 1].key;
  const run = async () => {
    const out = $("compare-lines");
    if (from.value === to.value) { out.replaceChildren(h("li", {}, "Pick two different environments.")); return; }
    try {
      const diff = await api("POST", "/api/flags/copy", { from: from.value, to: to.value, flags: [flag.name], dry_run: true });
      const lines = diff.flags.length ? diff.flags[0].described : [];
      out.replaceChildren(...(lines.length ? lines.map((line) => h("li", {}, line)) : [h("li", {}, "They serve the same.")]));
    } catch (error) { out.replaceChildren(h("li", { class: "error" }, error.message)); }
  };
  from.onchange = run;
  to.onchange = run;
  run();
}

// How an application asks for the flag: the Rust SDK, OFREP from anything, and the override for one process.
function renderSnippet(flag) {
  const environment = focusEnvironment();
  const getter = { boolean: "bool_value", string: "string_value", number: "number_value", json: "json_value" }[flag.type];
  const fallback = { boolean: "false", string: JSON.stringify(String(flag.default)), number: `${Number(flag.default)}_f64`, json: "serde_json::json!({})" }[flag.type];
  const variable = `FF_${flag.name.toUpperCase().replace(/[.-]/g, "_")}`;
  $("flag-snippet").textContent = [
    `// Rust (the vexil-sdk crate), served from ${environment.name}; other languages: OFREP below`,
    `let client = VexilClient::builder("${location.origin}", "${environment.key}", sdk_key).build()?;`,
    `let value = client.${getter}("${flag.name}", &Context::new(user_id), ${fallback});`,
    "",
    "# Any language, over OFREP (an SDK key of this environment)",
    `curl -s -X POST ${location.origin}/ofrep/v1/evaluate/flags/${flag.name} \\`,
    `  -H "Authorization: Bearer $VEXIL_SDK_KEY" -d '{"context": {"targetingKey": "user-42"}}'`,
    "",
    "# Override it for one process (it wins over every environment's state)",
    `${variable}=${flag.type === "string" ? flag.default : JSON.stringify(flag.default)}`,
  ].join("\n");
}

async function flagHistory(name) {
  const parameters = new URLSearchParams({ flag: name, limit: "20" });
  let page;
  try { page = await api("GET", `/api/flags/audit?${parameters}`); } catch (error) { notify(error.message); return; }
  $("flag-history-body").replaceChildren(...historyRows(page.entries));
  const more = $("flag-history-more");
  const follow = (next) => {
    more.hidden = !next;
    more.onclick = async () => {
      const older = new URLSearchParams(parameters);
      older.set("cursor", next);
      try {
        const page = await api("GET", `/api/flags/audit?${older}`);
        $("flag-history-body").append(...historyRows(page.entries));
        follow(page.next);
      } catch (error) { notify(error.message); }
    };
  };
  follow(page.next);
}

async function archiveFlag(flag) {
  const verb = flag.archived ? "unarchive" : "archive";
  const reason = await confirmChange(flag.archived ? `Unarchive ${flag.name}` : `Archive ${flag.name}`, { protected: false, name: "" },
    flag.archived ? "It comes back into the listings and its states can change again."
      : "It leaves the listings and its states freeze. A flag that serves anything in a protected environment cannot be archived.", false);
  if (reason === null) return;
  try {
    await api("POST", `/api/flags/${flag.name}/${verb}`, reason ? { reason } : {});
    notify(`${flag.name} ${verb}d.`, "done");
    await openFlag(flag.name, false);
  } catch (error) { notify(error.message); }
}

async function startRollout(flag, environment) {
  const fields = [
    ["steps", "Steps, in % (each step is taken when the guard found the one before healthy)", "text", "10, 25, 50, 100"],
    ["every", "Time between steps (30s, 15m, 2h, 1d)", "text", "30m"],
  ];
  if (environment.protected) fields.push(["reason", "Reason (required in a protected environment)", "text", ""]);
  await editor(`Start a rollout of ${flag.name} in ${environment.name}`, fields, async (values) => {
    const steps = values.steps.split(",").map((step) => step.trim()).filter(Boolean).map(Number);
    if (!steps.length || steps.some((step) => !Number.isFinite(step))) {
      throw fieldError("steps", "steps are percentages separated by commas, such as 10, 25, 50, 100");
    }
    const body = { steps, every: values.every.trim() };
    if (values.reason) body.reason = values.reason.trim();
    await api("POST", `/api/flags/${flag.name}/environments/${environment.key}/rollout`, body);
    notify(`Rollout of ${flag.name} in ${environment.title} started at ${steps[0]} %.`, "done");
  });
}

// JSON with object keys sorted, so two equal values read the same whatever order their fields came in.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).filter((key) => value[key] !== undefined).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function fieldError(field, message) {
  const error = new Error(message);
  error.field = field;
  return error;
}

// Shows an error from the server beside the field it names (`rules[0].conditions[1].values`), or the closest enclosing
// one the form has (`rules[0]`), else at the foot of the form.
function showFieldError(form, error, fallback) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const old of form.querySelectorAll("[aria-invalid]")) old.removeAttribute("aria-invalid");
  let field = error.field || "";
  while (field) {
    const target = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (target) {
      const note = h("p", { class: "field-error error", role: "alert", id: `error-${field.replace(/[^a-z0-9]/gi, "-")}` }, error.message);
      target.setAttribute("aria-invalid", "true");
      target.setAttribute("aria-describedby", note.id);
      const holder = target.closest(".field") || target;
      holder.after(note);
      if (typeof target.focus === "function") target.focus();
      fallback.textContent = "";
      return;
    }
    field = field.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
  }
  fallback.textContent = error.message;
}

// ---- The targeting editor: targets, ordered rules (drag or arrows to reorder), everyone else's split ----

// A serve as the editor holds it: a variant's name, or the value's text as typed. A value stays a value (even one a
// variant has), so opening and saving the editor changes nothing; something new serves the first variant, if any.
function editable(flag, serve) {
  if (serve && "variant" in serve) return { variant: serve.variant };
  if (!serve && (flag.variants || []).length) return { variant: flag.variants[0].name };
  const value = serve ? serve.value : flag.default;
  return { text: flag.type === "string" ? String(value) : JSON.stringify(value) };
}

// The n-th variant as something served (the first when there are fewer), for the shares of a new split.
function nthVariant(flag, index) {
  const variants = flag.variants || [];
  return variants.length ? { variant: variants[Math.min(index, variants.length - 1)].name } : null;
}

function served(flag, model) {
  if ("variant" in model) return { variant: model.variant };
  return { value: typedValue(model.text, flag.type) };
}

function bucketsOf(flag, split) {
  return split.buckets.map((bucket) => ({ serve: editable(flag, bucket.serve), percent: String(bucket.weight / 1000) }));
}

function splitOf(flag, buckets) {
  return { buckets: buckets.map((bucket) => ({ serve: served(flag, bucket.serve), weight: Math.round(Number(bucket.percent) * 1000) })) };
}

// A control choosing what is served: the flag's variants, true/false, or a value of its type.
function serveControl(flag, model, field, label) {
  const variants = flag.variants || [];
  if (variants.length) {
    const select = h("select", { "aria-label": label, dataset: { field } }, variants.map((variant) => new Option(variant.name, `variant:${variant.name}`)));
    // A value served as such (a new flag's state serves its default value) is kept as one of the choices.
    const value = "text" in model ? model.text : null;
    if (value !== null) {
      const typed = (() => { try { return JSON.stringify(typedValue(value, flag.type)); } catch (_) { return null; } })();
      const named = variants.find((variant) => JSON.stringify(variant.value) === typed);
      select.prepend(new Option(named ? `${named.name} (as a value)` : `${value === "" ? "(empty)" : value} (a value)`, "value"));
    }
    select.value = "variant" in model ? `variant:${model.variant}` : "value";
    select.addEventListener("change", () => {
      if (select.value === "value") { delete model.variant; model.text = value; } else { delete model.text; model.variant = select.value.slice("variant:".length); }
    });
    return select;
  }
  if (flag.type === "boolean") {
    const select = h("select", { "aria-label": label, dataset: { field } }, new Option("true", "true"), new Option("false", "false"));
    select.value = model.text === "false" ? "false" : "true";
    model.text = select.value;
    select.addEventListener("change", () => { model.text = select.value; });
    return select;
  }
  const input = h("input", { "aria-label": label, value: model.text || "", dataset: { field } });
  input.addEventListener("input", () => { model.text = input.value; });
  return input;
}

// Split buckets with a running total that must reach 100 %.
function splitEditor(flag, buckets, field, redraw) {
  const total = () => buckets.reduce((sum, bucket) => sum + Math.round(Number(bucket.percent || 0) * 1000), 0);
  const status = h("p", { class: "split-total", "aria-live": "polite" });
  const showTotal = () => {
    const sum = total();
    status.textContent = `Total: ${sum / 1000} %${sum === 100000 ? "" : " — the shares must add up to 100 %"}`;
    status.classList.toggle("error", sum !== 100000);
  };
  const rows = buckets.map((bucket, index) => {
    const percent = h("input", { type: "number", min: "0", max: "100", step: "0.001", value: bucket.percent, class: "percent",
      "aria-label": `Share ${index + 1} in %`, dataset: { field: `${field}.buckets[${index}].weight` } });
    percent.addEventListener("input", () => { bucket.percent = percent.value; showTotal(); });
    return h("div", { class: "row field" },
      percent, h("span", {}, "% get"), serveControl(flag, bucket.serve, `${field}.buckets[${index}].serve`, `What share ${index + 1} gets`),
      h("button", { type: "button", class: "small icon-button", "aria-label": `Remove share ${index + 1}`, onclick: () => { buckets.splice(index, 1); redraw(); } }, icon("remove")));
  });
  showTotal();
  return h("div", { class: "split field", dataset: { field } }, rows, status,
    h("button", { type: "button", class: "small", onclick: () => { buckets.push({ serve: editable(flag, nthVariant(flag, buckets.length)), percent: "0" }); redraw(); } }, "Add a share"));
}

async function editTargeting(flag, environment) {
  let current;
  try { current = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}`); } catch (error) { notify(error.message); return; }
  const state = current.state;
  const model = {
    enabled: state.enabled,
    targets: state.targets.map((target) => ({ keys: target.keys.join(", "), serve: editable(flag, target.serve) })),
    rules: state.rules.map((rule) => ({
      description: rule.description || "",
      conditions: rule.conditions.map((condition) => ({ attribute: condition.attribute, operator: condition.operator,
        values: condition.values.map((value) => (typeof value === "string" ? value : JSON.stringify(value))).join(", ") })),
      split: "split" in rule.serve ? bucketsOf(flag, rule.serve.split) : null,
      serve: "split" in rule.serve ? editable(flag, null) : editable(flag, rule.serve),
    })),
    serve: editable(flag, state.serve),
    split: state.split ? bucketsOf(flag, state.split) : null,
  };
  const dialog = $("targeting");
  const form = $("targeting-form");
  $("targeting-title").textContent = `Targeting of ${flag.name} in ${environment.name}`;
  $("targeting-error").textContent = "";
  $("targeting-protected").hidden = !environment.protected;
  $("targeting-reason").value = "";
  $("targeting-check").checked = false;
  const draw = () => $("targeting-fields").replaceChildren(...targetingFields(flag, model, draw));
  draw();
  await modal(dialog, form, $("targeting-cancel"), async (finish) => {
    const reason = $("targeting-reason").value.trim();
    try {
      if (environment.protected && !reason) throw fieldError("reason", `${environment.name} is protected: give a reason`);
      if (environment.protected && !$("targeting-check").checked) throw fieldError("confirm", `tick the confirmation to change ${environment.name}`);
      const body = specOf(flag, model);
      const before = { enabled: state.enabled, serve: state.serve, targets: state.targets, rules: state.rules, split: state.split || null };
      if (canonical(body) === canonical(before)) {
        finish(false);
        notify(`Nothing changed: ${flag.name} in ${environment.title} serves what it did.`, "done");
        return;
      }
      if (reason) body.reason = reason;
      await api("PUT", `/api/flags/${flag.name}/environments/${environment.key}`, body, { "If-Match": `"${state.version}"` });
      finish(true);
      notify(`${flag.name} in ${environment.title}: targeting saved.`, "done");
    } catch (error) {
      if (error.status === 412) {
        // Someone changed it since the editor opened: say what it serves now, so the user decides again.
        const now = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}`).catch(() => null);
        error.message += now ? ` It now serves: ${now.summary} (changed by ${now.state.updated_by}). Cancel and edit again to start from that.`
          : " Cancel and edit again to start from what it serves now.";
      }
      showFieldError(form, error, $("targeting-error"));
    }
  });
}

// The state the editor holds, as the API takes it; a value that does not read as the flag's type is refused here,
// beside its field.
function specOf(flag, model) {
  const serve = (m, field) => { try { return served(flag, m); } catch (error) { throw fieldError(field, error.message); } };
  const checkTotal = (buckets, field) => {
    const sum = buckets.reduce((total, bucket) => total + Math.round(Number(bucket.percent || 0) * 1000), 0);
    if (sum !== 100000) throw fieldError(field, `the shares add up to ${sum / 1000} %; they must add up to 100 %`);
  };
  const split = (buckets, field) => { checkTotal(buckets, field); try { return splitOf(flag, buckets); } catch (error) { throw fieldError(field, error.message); } };
  const values = (condition, field) => condition.values.split(",").map((value) => value.trim()).filter((value) => value !== "").map((value) => {
    if (NUMERIC.has(condition.operator)) {
      const number = Number(value);
      if (!Number.isFinite(number)) throw fieldError(field, `\`${value}\` is not a number; ${condition.operator} compares numbers`);
      return number;
    }
    // Text operators and versions compare strings; equality and lists take true and false as booleans.
    if (TEXTUAL.has(condition.operator) || condition.operator.startsWith("semver_")) return value;
    if (value === "true" || value === "false") return value === "true";
    return value;
  });
  return {
    enabled: model.enabled,
    serve: serve(model.serve, "serve"),
    targets: model.targets.map((target, index) => ({
      keys: target.keys.split(/[\s,]+/).filter(Boolean), serve: serve(target.serve, `targets[${index}].serve`),
    })),
    rules: model.rules.map((rule, index) => {
      const out = {
        conditions: rule.conditions.map((condition, position) => ({
          attribute: condition.attribute.trim(), operator: condition.operator,
          values: values(condition, `rules[${index}].conditions[${position}].values`),
        })),
        serve: rule.split ? { split: split(rule.split, `rules[${index}].serve`) } : served(flag, rule.serve),
      };
      if (rule.description.trim()) out.description = rule.description.trim();
      return out;
    }),
    split: model.split ? split(model.split, "split") : null,
  };
}

function targetingFields(flag, model, draw) {
  const enabled = h("input", { type: "checkbox", checked: model.enabled, id: "targeting-enabled" });
  enabled.addEventListener("change", () => { model.enabled = enabled.checked; });
  const targets = model.targets.map((target, index) => {
    const keys = h("textarea", { rows: "2", "aria-label": `Targeting keys of target ${index + 1}`, dataset: { field: `targets[${index}]` } }, target.keys);
    keys.addEventListener("input", () => { target.keys = keys.value; });
    return h("div", { class: "row field target" },
      keys, h("span", {}, "get"), serveControl(flag, target.serve, `targets[${index}].serve`, `What target ${index + 1} gets`),
      h("button", { type: "button", class: "small icon-button", "aria-label": `Remove target ${index + 1}`, onclick: () => { model.targets.splice(index, 1); draw(); } }, icon("remove")));
  });
  const rules = model.rules.map((rule, index) => ruleEditor(flag, model, rule, index, draw));
  const everyone = model.split
    ? splitEditor(flag, model.split, "split", draw)
    : h("div", { class: "row field" }, h("span", {}, "Serve"), serveControl(flag, model.serve, "serve", "What everyone else gets"));
  const splitToggle = h("button", { type: "button", class: "small", onclick: () => {
    model.split = model.split ? null : [{ serve: editable(flag, flag.type === "boolean" ? { value: true } : nthVariant(flag, 0)), percent: "50" },
      { serve: editable(flag, flag.type === "boolean" ? { value: false } : nthVariant(flag, 1)), percent: "50" }];
    draw();
  } }, model.split ? "Serve one value instead" : "Split by percentage");
  return [
    h("label", { class: "check" }, enabled, " Enabled (while off, everyone gets its off value, whatever is below)"),
    h("fieldset", {}, h("legend", {}, "Targets (checked first)"),
      h("p", { class: "hint" }, "Targeting keys (user or tenant ids), separated by commas or spaces."), targets,
      h("button", { type: "button", class: "small", onclick: () => { model.targets.push({ keys: "", serve: editable(flag, null) }); draw(); } }, "Add a target")),
    h("fieldset", { dataset: { field: "rules" } }, h("legend", {}, "Rules (in order; the first that matches serves)"), rules,
      h("button", { type: "button", class: "small", onclick: () => {
        model.rules.push({ description: "", conditions: [{ attribute: "", operator: "equals", values: "" }], serve: editable(flag, null), split: null });
        draw();
      } }, "Add a rule")),
    h("fieldset", {}, h("legend", {}, "Everyone else"), everyone, splitToggle),
  ];
}

function ruleEditor(flag, model, rule, index, draw) {
  const field = `rules[${index}]`;
  const move = (to) => { const [taken] = model.rules.splice(index, 1); model.rules.splice(to, 0, taken); draw(); };
  const description = h("input", { value: rule.description, "aria-label": `Description of rule ${index + 1}`, placeholder: "why this rule exists (optional)", dataset: { field: `${field}.description` } });
  description.addEventListener("input", () => { rule.description = description.value; });
  const conditions = rule.conditions.map((condition, position) => {
    const at = `${field}.conditions[${position}]`;
    const attribute = h("input", { value: condition.attribute, placeholder: "attribute (email, country, plan)", "aria-label": `Attribute of rule ${index + 1} condition ${position + 1}`, dataset: { field: `${at}.attribute` } });
    attribute.addEventListener("input", () => { condition.attribute = attribute.value; });
    const operator = h("select", { "aria-label": `Operator of rule ${index + 1} condition ${position + 1}`, dataset: { field: `${at}.operator` } },
      OPERATORS.map(([value, text]) => new Option(text, value)));
    operator.value = condition.operator;
    operator.addEventListener("change", () => { condition.operator = operator.value; });
    const values = h("input", { value: condition.values, placeholder: "values, separated by commas", "aria-label": `Values of rule ${index + 1} condition ${position + 1}`, dataset: { field: `${at}.values` } });
    values.addEventListener("input", () => { condition.values = values.value; });
    return h("div", { class: "row field condition", dataset: { field: at } }, h("span", { class: "joiner" }, position ? "and" : "if"), attribute, operator, values,
      h("button", { type: "button", class: "small icon-button", "aria-label": `Remove condition ${position + 1} of rule ${index + 1}`, onclick: () => { rule.conditions.splice(position, 1); draw(); } }, icon("remove")));
  });
  const serves = rule.split
    ? splitEditor(flag, rule.split, `${field}.serve`, draw)
    : h("div", { class: "row field" }, h("span", { class: "joiner" }, "serve"), serveControl(flag, rule.serve, `${field}.serve`, `What rule ${index + 1} serves`));
  const card = h("fieldset", { class: "rule", draggable: "true", dataset: { field, index: String(index) } },
    h("legend", {}, h("span", { class: "grip", title: "Drag to reorder" }, icon("grip")), ` Rule ${index + 1}`),
    h("div", { class: "rule-tools" },
      h("button", { type: "button", class: "small icon-button", "aria-label": `Move rule ${index + 1} up`, disabled: index === 0, onclick: () => move(index - 1) }, icon("up")),
      h("button", { type: "button", class: "small icon-button", "aria-label": `Move rule ${index + 1} down`, disabled: index === model.rules.length - 1, onclick: () => move(index + 1) }, icon("down")),
      h("button", { type: "button", class: "small", "aria-label": `Remove rule ${index + 1}`, onclick: () => { model.rules.splice(index, 1); draw(); } }, "Remove")),
    description, conditions,
    h("button", { type: "button", class: "small", onclick: () => { rule.conditions.push({ attribute: "", operator: "equals", values: "" }); draw(); } }, "Add a condition"),
    serves,
    h("button", { type: "button", class: "small", onclick: () => {
      rule.split = rule.split ? null : [{ serve: editable(flag, flag.type === "boolean" ? { value: true } : nthVariant(flag, 0)), percent: "50" },
        { serve: editable(flag, flag.type === "boolean" ? { value: false } : nthVariant(flag, 1)), percent: "50" }];
      draw();
    } },
      rule.split ? "Serve one value instead" : "Split by percentage"));
  // Drag a rule onto another to put it there.
  card.addEventListener("dragstart", (event) => { event.dataTransfer.setData("text/plain", String(index)); card.classList.add("dragging"); });
  card.addEventListener("dragend", () => card.classList.remove("dragging"));
  card.addEventListener("dragover", (event) => { event.preventDefault(); card.classList.add("drop-target"); });
  card.addEventListener("dragleave", () => card.classList.remove("drop-target"));
  card.addEventListener("drop", (event) => {
    event.preventDefault();
    const from = Number(event.dataTransfer.getData("text/plain"));
    if (Number.isInteger(from) && from !== index) { const [taken] = model.rules.splice(from, 1); model.rules.splice(index, 0, taken); draw(); }
  });
  return card;
}

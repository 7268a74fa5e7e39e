// Vexil's admin panel: plain JavaScript over the public API, no build step.
// State: the session (email, role, csrf), environments, flags; the matrix is re-rendered from it on every change,
// and every environment's SSE stream keeps it current (changes made anywhere appear with who made them).
"use strict";

const panel = { me: null, environments: [], flags: new Map(), focus: null, streams: null, selected: new Set(), historyFlag: null, page: 1, flagPage: null };
// The matrix shows this many flags a page: a thousand rows took 285 ms to lay out, a page of them 30 (docs/benchmarks.md).
const PAGE_SIZE = 100;
const ACTIONS = ["create", "update", "enable", "disable", "promote", "copy", "import", "archive", "unarchive", "rollout_step", "rollback"];
const $ = (id) => document.getElementById(id);

async function api(method, path, body, extra = {}) {
  const headers = { "Accept": "application/json", ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && panel.me && panel.me.csrf) headers["X-CSRF-Token"] = panel.me.csrf;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(data && data.error ? data.error.message : `the server answered ${response.status}`);
    error.status = response.status;
    error.field = data && data.error ? data.error.field : undefined;
    // The session ended (it expired, was revoked, or the user was disabled): back to the login form, which says so.
    if (response.status === 401 && panel.me && path !== "/api/auth/login") sessionEnded();
    throw error;
  }
  return data;
}

function sessionEnded() {
  panel.me = null;
  closeStreams();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("login-error").textContent = "Your session has ended: log in again to go on.";
  show("login");
}

// A non-blocking message: what was done (it goes after a few seconds) or what went wrong (it stays until dismissed),
// with an action where one is safe (undo).
function notify(message, kind = "error", action = null) {
  if (!panel.me) return; // the login form says what happened
  const toast = document.createElement("div");
  toast.className = `toast ${kind}`;
  toast.setAttribute("role", kind === "error" ? "alert" : "status");
  const text = document.createElement("span");
  text.textContent = message;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "small";
  dismiss.textContent = "Dismiss";
  dismiss.setAttribute("aria-label", "Dismiss this message");
  dismiss.addEventListener("click", () => toast.remove());
  toast.append(text);
  if (action) {
    const act = document.createElement("button");
    act.type = "button";
    act.className = "small";
    act.textContent = action.label;
    act.addEventListener("click", () => { toast.remove(); action.run(); });
    toast.append(act);
  }
  toast.append(dismiss);
  const region = $("toasts");
  region.append(toast);
  while (region.children.length > 4) region.firstElementChild.remove();
  // Messages go after a while (longer when they offer an action), never while the pointer is on them.
  if (kind !== "error") {
    let timer = setTimeout(() => toast.remove(), action ? 15000 : 6000);
    toast.addEventListener("mouseenter", () => clearTimeout(timer));
    toast.addEventListener("mouseleave", () => { timer = setTimeout(() => toast.remove(), 4000); });
  }
}

function show(view) {
  for (const id of ["login", "flags-view", "flag-view", "access-view", "history"]) $(id).hidden = id !== view;
  $("who").hidden = view === "login";
}

// `fresh` after a login or a reconnection: the streams are opened anew, with this session.
async function start(fresh = false) {
  try {
    panel.me = await api("GET", "/api/me");
  } catch (error) {
    show("login");
    return;
  }
  $("user").textContent = panel.me.email;
  $("role").textContent = panel.me.role;
  const listing = await api("GET", "/api/flags");
  panel.environments = listing.environments;
  panel.focus = panel.focus || panel.environments[0].key;
  panel.flags = new Map(listing.flags.map((flag) => [flag.name, flag]));
  $("history-env").replaceChildren(new Option("any", ""), ...panel.environments.map((environment) => new Option(environment.title, environment.key)));
  await applyLocation();
  follow(fresh);
}

// Every view has a URL: the environment in focus, the filters, and the history with its filters
// (`/?env=staging&q=voice`, `/?view=flag&flag=ui.checkout`, `/?view=history&flag=ui.new_feature`). Back and Forward move between views; a reload, or
// the URL sent to someone, opens the same place.
function writeLocation(push) {
  const parameters = new URLSearchParams();
  if (panel.focus && panel.environments.length && panel.focus !== panel.environments[0].key) parameters.set("env", panel.focus);
  if ($("filter").value) parameters.set("q", $("filter").value);
  if ($("state-filter").value) parameters.set("state", $("state-filter").value);
  if ($("sort").value) parameters.set("sort", $("sort").value);
  if (panel.page > 1 && !$("flags-view").hidden) parameters.set("page", String(panel.page));
  if (!$("flag-view").hidden && panel.flagPage) {
    parameters.set("view", "flag");
    parameters.set("flag", panel.flagPage);
  }
  if (!$("access-view").hidden) parameters.set("view", "access");
  if (!$("history").hidden) {
    parameters.set("view", "history");
    if (panel.historyFlag) parameters.set("flag", panel.historyFlag);
    if ($("history-env").value) parameters.set("history_env", $("history-env").value);
    if ($("history-user").value.trim()) parameters.set("user", $("history-user").value.trim());
    if ($("history-action").value) parameters.set("action", $("history-action").value);
  }
  const url = parameters.toString() ? `/?${parameters}` : "/";
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}

async function applyLocation() {
  const parameters = new URLSearchParams(location.search);
  const focus = parameters.get("env");
  if (focus && panel.environments.some((environment) => environment.key === focus)) panel.focus = focus;
  else if (!focus) panel.focus = panel.environments[0].key;
  $("filter").value = parameters.get("q") || "";
  const state = parameters.get("state") || "";
  if ([...$("state-filter").options].some((option) => option.value === state)) $("state-filter").value = state;
  panel.page = Number.parseInt(parameters.get("page") || "1", 10) || 1;
  $("sort").value = parameters.get("sort") === "changed" ? "changed" : "";
  renderSwitcher();
  render();
  if (parameters.get("view") === "history") {
    $("history-env").value = parameters.get("history_env") || "";
    $("history-user").value = parameters.get("user") || "";
    $("history-action").value = parameters.get("action") || "";
    await openHistory(parameters.get("flag"), false);
  } else if (parameters.get("view") === "access") {
    await openAccess(false);
  } else if (parameters.get("view") === "flag" && parameters.get("flag")) {
    await openFlag(parameters.get("flag"), false);
  } else {
    show("flags-view");
  }
}

function renderSwitcher() {
  const nav = $("switcher");
  const label = document.createElement("span");
  label.className = "switcher-label";
  label.textContent = "Environment:";
  nav.replaceChildren(label);
  for (const environment of panel.environments) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = environment.title;
    button.setAttribute("aria-pressed", String(environment.key === panel.focus));
    button.addEventListener("click", () => { panel.focus = environment.key; renderSwitcher(); render(); writeLocation(false); });
    nav.append(button);
  }
  const focus = focusEnvironment();
  for (const span of document.querySelectorAll(".focus-name")) span.textContent = focus.title;
  const from = $("copy-from");
  const previous = from.value;
  from.replaceChildren(...panel.environments.filter((environment) => environment.key !== focus.key).map((environment) => {
    const option = document.createElement("option");
    option.value = environment.key;
    option.textContent = environment.title;
    return option;
  }));
  if ([...from.options].some((option) => option.value === previous)) from.value = previous;
  const viewer = panel.me.role === "viewer";
  $("actions").hidden = viewer;
  $("new-flag").hidden = viewer;
}

function focusEnvironment() {
  return panel.environments.find((environment) => environment.key === panel.focus);
}

// What a flag serves in an environment, in the server's words (vexil_core::describe, pinned by spec/summary.json):
// the page never works out a summary itself, so it shows what the CLI and the API say.
function summary(flag, environmentKey) {
  const state = flag.environments[environmentKey];
  const words = (flag.summaries || {})[environmentKey] || (state && state.enabled ? "Enabled" : "Disabled");
  return (state && state.enabled ? "✓ " : "✗ ") + words;
}

// Whether a flag serves differently somewhere: its environments' states differ in anything but who changed them when.
function differs(flag) {
  const served = panel.environments.map((environment) => {
    const state = flag.environments[environment.key];
    if (!state) return "none";
    const { version, updated_by, updated_at, rollout, ...content } = state;
    return JSON.stringify(content);
  });
  return new Set(served).size > 1;
}

function mayChange(environment) {
  const role = panel.me.role;
  if (role === "admin") return null;
  if (role === "developer" && !environment.protected) return null;
  if (role === "developer") return `${environment.name} is protected: changing it needs the admin role`;
  return "your role is viewer, which can only read";
}

function render() {
  const head = $("matrix-head");
  const viewer = panel.me.role === "viewer";
  const columns = viewer ? ["Flag", ...panel.environments.map((environment) => environment.title), "History"]
                         : ["Select", "Flag", ...panel.environments.map((environment) => environment.title), "Promote", "History"];
  head.replaceChildren(...columns.map((text) => {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = text;
    const environment = panel.environments.find((candidate) => candidate.title === text);
    if (environment) {
      cell.className = "env" + (environment.key === panel.focus ? " focus" : "") + (environment.protected ? " protected" : "");
      // A protected environment is marked for everyone, and what the user's role cannot do there is said before any
      // click: the controls below are disabled, and the reason is here, not only in their tooltips.
      if (environment.protected) {
        const mark = document.createElement("span");
        mark.className = "protected-mark";
        mark.textContent = "protected";
        cell.append(" ", mark);
      }
      const refusal = mayChange(environment);
      if (refusal && !viewer) {
        const note = document.createElement("small");
        note.className = "refusal";
        note.textContent = refusal;
        cell.append(note);
      }
    }
    if (text === "Promote") cell.className = "promote";
    return cell;
  }));
  $("role-note").hidden = !viewer;
  const words = $("filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const rows = [];
  let category = null;
  const wantedState = $("state-filter").value;
  const matches = (flag) => {
    // Plain words match the name, category, tags, owner and description; `tag:launch` and `owner:team-web` only those.
    for (const word of words) {
      const [field, value] = word.includes(":") ? [word.slice(0, word.indexOf(":")), word.slice(word.indexOf(":") + 1)] : [null, word];
      if (field === "tag" && !(flag.tags || []).some((tag) => tag.toLowerCase() === value)) return false;
      if (field === "owner" && !(flag.owner || "").toLowerCase().includes(value)) return false;
      if (field !== "tag" && field !== "owner") {
        const haystack = [flag.name, flag.category, ...(flag.tags || []), flag.owner || "", flag.description || ""].join(" ").toLowerCase();
        if (!haystack.includes(word)) return false;
      }
    }
    const focusState = flag.environments[panel.focus];
    if (wantedState === "differs") return differs(flag);
    if (wantedState) return (wantedState === "on") === Boolean(focusState && focusState.enabled);
    return true;
  };
  // By category and name (grouped), or most recently changed first (a change in any environment counts).
  const byChange = $("sort").value === "changed";
  const changedAt = (flag) => Object.values(flag.environments).reduce((latest, state) => (state.updated_at > latest ? state.updated_at : latest), flag.updated_at || "");
  const all = [...panel.flags.values()].sort((a, b) =>
    byChange ? changedAt(b).localeCompare(changedAt(a)) || a.name.localeCompare(b.name) : a.name.localeCompare(b.name));
  const shown = all.filter(matches);
  const shownIn = (name) => {
    const count = shown.filter((flag) => flag.category === name).length;
    return `${count} flag${count === 1 ? "" : "s"}`;
  };
  $("flag-count").textContent = shown.length === all.length ? `· ${all.length} flag${all.length === 1 ? "" : "s"}` : `· ${shown.length} of ${all.length} shown`;
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  panel.page = Math.min(Math.max(1, panel.page), pages);
  const first = (panel.page - 1) * PAGE_SIZE;
  $("pager").hidden = pages === 1;
  $("page-position").textContent = `Flags ${first + 1}–${Math.min(first + PAGE_SIZE, shown.length)} of ${shown.length} · page ${panel.page} of ${pages}`;
  $("page-previous").disabled = panel.page === 1;
  $("page-next").disabled = panel.page === pages;
  for (const flag of shown.slice(first, first + PAGE_SIZE)) {
    if (!byChange && flag.category !== category) {
      // Flags come sorted by name, so each category is one group, headed by its name and size.
      category = flag.category;
      const group = document.createElement("tr");
      group.className = "group";
      const heading = document.createElement("th");
      heading.scope = "rowgroup";
      heading.colSpan = columns.length;
      heading.textContent = `${category} · ${shownIn(category)}`;
      group.append(heading);
      rows.push(group);
    }
    const row = document.createElement("tr");
    row.dataset.flag = flag.name;
    if (!viewer) {
      const pick = document.createElement("td");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = panel.selected.has(flag.name);
      box.setAttribute("aria-label", `Select ${flag.name}`);
      box.addEventListener("change", () => {
        if (box.checked) panel.selected.add(flag.name); else panel.selected.delete(flag.name);
        $("selected-count").textContent = panel.selected.size;
      });
      pick.append(box);
      row.append(pick);
    }
    const name = document.createElement("th");
    name.scope = "row";
    // The name opens the flag's page: every environment side by side, its targeting, history and editors.
    const open = document.createElement("a");
    open.href = `/?view=flag&flag=${encodeURIComponent(flag.name)}`;
    open.className = "flag-link";
    open.append(...breakable(flag.name));
    open.title = flag.description || `Open ${flag.name}`;
    open.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      openFlag(flag.name);
    });
    name.append(open);
    row.append(name);
    for (const environment of panel.environments) {
      const state = flag.environments[environment.key];
      const cell = document.createElement("td");
      cell.className = "state" + (environment.key === panel.focus ? " focus" : "");
      cell.dataset.environment = environment.key;
      if (viewer) {
        // A viewer gets the state, not a control.
        const text = document.createElement("span");
        text.textContent = summary(flag, environment.key);
        text.className = state && state.enabled ? "on" : "off";
        cell.append(text);
        row.append(cell);
        continue;
      }
      const button = document.createElement("button");
      button.type = "button";
      // The state is a switch to click: a small track and knob before the words of what it serves.
      const track = document.createElement("span");
      track.className = "mini-switch";
      track.setAttribute("aria-hidden", "true");
      button.append(track, summary(flag, environment.key));
      button.className = state && state.enabled ? "on" : "off";
      const verb = state && state.enabled ? "Disable" : "Enable";
      button.setAttribute("aria-label", `${verb} ${flag.name} in ${environment.name}`);
      const refusal = mayChange(environment);
      if (refusal) { button.disabled = true; button.title = refusal; } else { button.title = `${verb} in ${environment.name}`; }
      button.addEventListener("click", () => toggle(flag, environment, !(state && state.enabled)));
      const set = document.createElement("button");
      set.type = "button";
      set.textContent = "Set…";
      set.className = "small";
      set.setAttribute("aria-label", `Set ${flag.name} in ${environment.name}`);
      set.disabled = Boolean(refusal);
      if (refusal) set.title = refusal;
      set.addEventListener("click", () => setState(flag, environment));
      cell.append(button, " ", set);
      if (state && state.rollout) {
        const badge = document.createElement("button");
        badge.type = "button";
        badge.className = "small plan-badge";
        const plan = state.rollout;
        // Words and an inline icon: symbols such as ⟳ or ⏸ are boxes where no font has them.
        badge.append(icon(plan.paused ? "pause" : "rollout"), ` step ${plan.next_step}/${plan.steps.length}${plan.paused ? ", paused" : ""}`);
        badge.setAttribute("aria-label", `Rollout of ${flag.name} in ${environment.name}`);
        badge.addEventListener("click", () => openPlan(flag, environment));
        cell.append(" ", badge);
      } else if (guarded(state, environment)) {
        const badge = document.createElement("button");
        badge.type = "button";
        badge.className = "small plan-badge";
        badge.append(icon("shield"), " guarded");
        badge.title = `The guard compares error rates for ${environment.guard_window_seconds / 60} minutes after a change`;
        badge.setAttribute("aria-label", `Guard of ${flag.name} in ${environment.name}`);
        badge.addEventListener("click", () => openPlan(flag, environment));
        cell.append(" ", badge);
      }
      row.append(cell);
    }
    if (viewer) {
      row.append(historyCell(flag));
      rows.push(row);
      continue;
    }
    const promoteCell = document.createElement("td");
    promoteCell.className = "promote";
    // On a phone only one environment shows: its own promotion stays (into it, or out of the first one).
    const focusIndex = Math.max(1, panel.environments.findIndex((environment) => environment.key === panel.focus));
    panel.environments.slice(1).forEach((target, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `Promote to ${target.title}`;
      if (index + 1 === focusIndex) button.classList.add("focus-promote");
      const refusal = mayChange(target);
      if (refusal) { button.disabled = true; button.title = refusal; }
      button.addEventListener("click", () => promote(flag, panel.environments[index], target));
      promoteCell.append(button, " ");
    });
    row.append(promoteCell);
    row.append(historyCell(flag));
    rows.push(row);
  }
  $("matrix-body").replaceChildren(...rows);
  $("empty").hidden = panel.flags.size > 0;
  $("no-match").hidden = !(panel.flags.size > 0 && shown.length === 0);
  $("selected-count").textContent = panel.selected.size;
}

// A flag name in pieces ending at its dot and underscores, which narrow screens may put on separate lines (panel.css);
// the text is unchanged.
function breakable(name) {
  return name.split(/(?<=[._])/).map((part) => {
    const piece = document.createElement("span");
    piece.className = "piece";
    piece.textContent = part;
    return piece;
  });
}

function historyCell(flag) {
  const cell = document.createElement("td");
  const link = document.createElement("button");
  link.type = "button";
  link.textContent = "History";
  link.setAttribute("aria-label", `History of ${flag.name}`);
  link.addEventListener("click", () => openHistory(flag.name));
  cell.append(link);
  return cell;
}

// Opens a dialog whose form's submit runs `onSubmit(finish)`. Cancel, Escape (the dialog's own close) and `finish`
// each end it exactly once and remove every handler it added, so nothing of a dialog left acts later; resolves to what
// `finish` was given, or null when cancelled.
function modal(dialog, form, cancelButton, onSubmit) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      form.removeEventListener("submit", submit);
      cancelButton.removeEventListener("click", cancel);
      dialog.removeEventListener("close", cancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const submit = (event) => { event.preventDefault(); if (!settled) onSubmit(finish); };
    const cancel = () => finish(null);
    form.addEventListener("submit", submit);
    cancelButton.addEventListener("click", cancel);
    dialog.addEventListener("close", cancel);
    dialog.showModal();
  });
}

// Asks for confirmation (and, in a protected environment, a reason); resolves to the reason or null when cancelled.
function confirmChange(title, environment, diffText, requireCheck = true, action = "Apply") {
  $("confirm-title").textContent = title;
  $("confirm-ok").textContent = action;
  $("confirm-diff").textContent = diffText;
  $("confirm-protected").hidden = !environment.protected;
  $("confirm-env").textContent = environment.name;
  $("confirm-reason").value = "";
  $("confirm-check").checked = false;
  $("confirm-check-label").hidden = !requireCheck;
  $("confirm-error").textContent = "";
  return modal($("confirm"), $("confirm-form"), $("confirm-cancel"), (finish) => {
    const reason = $("confirm-reason").value.trim();
    if (environment.protected && (!reason || (requireCheck && !$("confirm-check").checked))) {
      $("confirm-error").textContent = `${environment.name} is protected: give a reason and tick the confirmation`;
      return;
    }
    finish(reason || "");
  });
}

// What a disabled state serves once turned on, in the server's words ("rolled out to 30 %"), when it says.
function armed(flag, environment) {
  const words = (flag.summaries || {})[environment.key] || "";
  return words.includes(" · when enabled: ") ? words.split(" · when enabled: ")[1] : "";
}

async function toggle(flag, environment, enable, pinned = null) {
  const verb = enable ? "enable" : "disable";
  let reason = "";
  if (environment.protected) {
    // Turning a flag off in production must never wait: a reason is enough (the emergency path).
    reason = await confirmChange(`${enable ? "Turn on" : "Turn off"} ${flag.name} in ${environment.name}`, environment,
      enable ? `turned on${armed(flag, environment) ? `: ${armed(flag, environment)}` : ""}` : "turned off: everyone gets its off value",
      enable, enable ? "Turn on" : "Turn off");
    if (reason === null) return;
  }
  try {
    // An enable turns on the state the panel shows: If-Match refuses it when that state changed meanwhile. A disable
    // never waits on a version.
    const shown = flag.environments && flag.environments[environment.key];
    const version = pinned !== null ? pinned : shown && shown.version;
    const pin = enable && version ? { "If-Match": `"${version}"` } : {};
    const answer = await api("POST", `/api/flags/${flag.name}/environments/${environment.key}/${verb}`, reason ? { reason } : {}, pin);
    const words = answer.changed ? `${flag.name} in ${environment.title}: ${answer.summary}` : `${flag.name} in ${environment.title} already was ${verb}d`;
    // Undo is offered where a change needs no reason (not in a protected environment); undoing a disable turns on
    // exactly the state it turned off, and is refused if someone changed it since.
    const undo = answer.changed && !environment.protected
      ? { label: "Undo", run: () => toggle(flag, environment, !enable, answer.state.version) } : null;
    notify(words, "done", undo);
  } catch (error) {
    if (error.status === 412) {
      // Someone changed it since the page showed it: say what it serves now, so the user decides again.
      try {
        const now = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}`);
        notify(`${error.message} It now serves: ${now.summary} (changed by ${now.state.updated_by}).`);
        return;
      } catch (_) { /* the first message says enough */ }
    }
    notify(error.message);
  }
}

// A diff in the server's words (vexil_core::describe, pinned by spec/changes.json), one change a line.
function diffText(described) {
  return described.length ? described.join("\n") : "(no difference)";
}

async function promote(flag, from, to) {
  try {
    const preview = await api("POST", `/api/flags/${flag.name}/promote`, { from: from.key, to: to.key, dry_run: true });
    if (!preview.changes.length) {
      notify(`Nothing to promote: ${flag.name} serves the same in ${to.title} as in ${from.title}.`, "done");
      return;
    }
    // A boolean flag can reach the target step by step, the guard watching each step (the seed's "promote to
    // production as a gradual rollout").
    $("confirm-rollout").hidden = flag.type !== "boolean";
    $("confirm-rollout-on").checked = false;
    const reason = await confirmChange(`Promote ${flag.name} from ${from.title} to ${to.title}`, to, diffText(preview.described), true, "Promote");
    $("confirm-rollout").hidden = true;
    if (reason === null) return;
    const gradual = flag.type === "boolean" && $("confirm-rollout-on").checked;
    const rollout = gradual ? {
      steps: $("confirm-rollout-steps").value.split(",").map((step) => Number(step.trim())).filter((step) => !Number.isNaN(step)),
      every: $("confirm-rollout-every").value.trim(),
    } : undefined;
    // What the dialog showed is what is promoted: the server refuses if the target, the source or the definition moved.
    await api("POST", `/api/flags/${flag.name}/promote`, {
      from: from.key, to: to.key, reason: reason || undefined, expected_version: preview.target_version,
      expected_source_version: preview.source_version, expected_definition_version: preview.definition_version, rollout,
    });
    notify(gradual ? `${flag.name} is rolling out to ${to.title}: step 1 of ${rollout.steps.length}, ${rollout.steps[0]} %.`
      : `${flag.name} promoted from ${from.title} to ${to.title}.`, "done");
  } catch (error) {
    notify(error.message);
  }
}

async function openHistory(flagName, push = true) {
  panel.historyFlag = flagName || null;
  const parameters = new URLSearchParams();
  if (flagName) parameters.set("flag", flagName);
  if ($("history-env").value) parameters.set("env", $("history-env").value);
  if ($("history-user").value.trim()) parameters.set("user", $("history-user").value.trim());
  if ($("history-action").value) parameters.set("action", $("history-action").value);
  const query = parameters.toString() ? `?${parameters}` : "";
  let page;
  try { page = await api("GET", `/api/flags/audit${query}`); } catch (error) { notify(error.message); return; }
  $("history-title").textContent = flagName ? `History of ${flagName}` : "History";
  $("history-body").replaceChildren(...historyRows(page.entries));
  moreHistory(page.next, parameters);
  show("history");
  writeLocation(push);
}

const HISTORY_COLUMNS = ["When", "Who", "Source", "Action", "Flag", "Environment", "Reason", "What changed"];

function historyRows(entries) {
  return entries.map((entry) => {
    const row = document.createElement("tr");
    const when = entry.timestamp.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
    const texts = [when, entry.user, entry.source || "", entry.action + (entry.from_environment ? ` (from ${entry.from_environment})` : ""),
                   entry.flag || "", entry.environment || "", entry.reason || "", null];
    texts.forEach((text, index) => {
      const cell = document.createElement("td");
      if (text !== null) cell.textContent = text;
      // What the record did, a line a change, in the server's words (vexil_core::describe::record_changes).
      else for (const line of entry.changes || []) { const item = document.createElement("div"); item.textContent = line; cell.append(item); }
      cell.dataset.label = HISTORY_COLUMNS[index];
      if (index === 0) cell.className = "when";
      row.append(cell);
    });
    return row;
  });
}

// The history comes a page at a time; "Load more" follows the server's cursor to the older records.
function moreHistory(next, parameters) {
  const button = $("history-more");
  button.hidden = !next;
  button.onclick = async () => {
    const more = new URLSearchParams(parameters);
    more.set("cursor", next);
    let page;
    try { page = await api("GET", `/api/flags/audit?${more}`); } catch (error) { notify(error.message); return; }
    $("history-body").append(...historyRows(page.entries));
    moreHistory(page.next, parameters);
  };
}

async function bulk(action) {
  const environment = focusEnvironment();
  const flags = [...panel.selected];
  if (!flags.length) { notify("Select flags first (the checkboxes in the first column)."); return; }
  let reason = "";
  if (environment.protected) {
    // A change by a person ends a running rollout: say which ones this ends.
    const ending = flags.filter((name) => (((panel.flags.get(name) || {}).environments || {})[environment.key] || {}).rollout);
    const lines = flags.map((name) => (ending.includes(name) ? `${name} (ends its rollout, which does not resume by itself)` : name));
    reason = await confirmChange(`${action === "enable" ? "Turn on" : "Turn off"} ${flags.length} flags in ${environment.name}`, environment, lines.join("\n"),
      action === "enable", action === "enable" ? "Turn on" : "Turn off");
    if (reason === null) return;
  }
  const before = statesShown(environment, flags);
  try {
    const answer = await api("POST", "/api/flags/bulk", { action, environment: environment.key, flags, reason: reason || undefined });
    panel.selected.clear();
    render();
    const count = answer.changed.length;
    notify(count ? `${count} flag${count === 1 ? "" : "s"} ${action}d in ${environment.title}${answer.unchanged.length ? ` (${answer.unchanged.length} already were)` : ""}.`
      : `Nothing changed: every selected flag already was ${action}d in ${environment.title}.`, "done",
      batchUndo(environment, before, answer.changed, (name) => before[name] && before[name].version));
  } catch (error) { notify(error.message); }
}

// Each flag's state in an environment as the page shows it (what an undo puts back).
function statesShown(environment, names) {
  return Object.fromEntries(names.map((name) => [name, ((panel.flags.get(name) || {}).environments || {})[environment.key]]));
}

// Undo for a batch (bulk, copy, import) where a change needs no reason: an import of each changed flag's state as the
// page showed it before, pinned to the version the batch made of it (`version(name)` + 1), so a flag someone changed
// since is refused, not overwritten (and then nothing is undone). None when a state the batch started from is not
// the one the page shows.
function batchUndo(environment, before, changed, version) {
  if (environment.protected || !changed.length) return null;
  const flags = {};
  const expected = {};
  for (const name of changed) {
    const state = before[name];
    if (!state || version(name) !== state.version) return null;
    const { enabled, serve, targets, rules, split } = state;
    flags[name] = split ? { enabled, serve, targets, rules, split } : { enabled, serve, targets, rules };
    expected[name] = state.version + 1;
  }
  return {
    label: "Undo",
    run: async () => {
      try {
        await api("POST", `/api/environments/${environment.key}/import`, {
          document: { format: "vexil.states", version: 1, environment: environment.key, flags }, expected_versions: expected,
        });
        notify(`Undone: ${changed.length} flag${changed.length === 1 ? "" : "s"} in ${environment.title} serve what ${changed.length === 1 ? "it" : "they"} did before.`, "done");
      } catch (error) { notify(`Not undone: ${error.message}`); }
    },
  };
}

function batchText(preview) {
  const lines = preview.flags.map((flag) => `${flag.flag}\n` + flag.described.map((line) => `  ${line}`).join("\n"));
  if (!lines.length) lines.push("(no difference)");
  if (preview.unchanged.length) lines.push(`${preview.unchanged.length} already identical`);
  return lines.join("\n");
}

async function copyInto() {
  const to = focusEnvironment();
  const from = panel.environments.find((environment) => environment.key === $("copy-from").value);
  const flags = panel.selected.size ? [...panel.selected] : undefined;
  try {
    const preview = await api("POST", "/api/flags/copy", { from: from.key, to: to.key, flags, dry_run: true });
    const reason = await confirmChange(`Copy ${flags ? flags.length + " selected flags" : "every flag"} from ${from.title} into ${to.title}`, to, batchText(preview));
    if (reason === null || !preview.flags.length) return;
    const names = preview.flags.map((flag) => flag.flag);
    const before = statesShown(to, names);
    const shown = pins(preview, "target_version");
    await api("POST", "/api/flags/copy", {
      from: from.key, to: to.key, flags, reason: reason || undefined, expected_versions: shown,
      expected_source_versions: pins(preview, "source_version"), expected_definition_versions: pins(preview, "definition_version"),
    });
    notify(`${names.length} flag${names.length === 1 ? "" : "s"} copied from ${from.title} into ${to.title}.`, "done",
      batchUndo(to, before, names, (name) => shown[name]));
  } catch (error) { notify(error.message); }
}

async function exportFocus() {
  const environment = focusEnvironment();
  try {
    const document_ = await api("GET", `/api/environments/${environment.key}/export`);
    const link = document.createElement("a");
    const blob = new Blob([JSON.stringify(document_, null, 2) + "\n"], { type: "application/json" });
    link.href = URL.createObjectURL(blob);
    link.blob = blob; // what was offered for download, readable by the page (and its tests)
    link.download = `vexil-${environment.key}.json`;
    link.id = "export-link";
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 60_000);
  } catch (error) { notify(error.message); }
}

// The versions a batch diff was computed against, by flag: sent back so the server refuses what moved since it was shown.
function pins(preview, field) {
  return Object.fromEntries(preview.flags.map((flag) => [flag.flag, flag[field]]));
}

async function importFile(file) {
  const environment = focusEnvironment();
  let document_;
  try { document_ = JSON.parse(await file.text()); } catch (error) { notify(`${file.name} is not JSON: ${error.message}`); return; }
  try {
    const preview = await api("POST", `/api/environments/${environment.key}/import`, { document: document_, dry_run: true });
    const reason = await confirmChange(`Import ${file.name} into ${environment.title}`, environment, batchText(preview));
    if (reason === null || !preview.flags.length) return;
    const names = preview.flags.map((flag) => flag.flag);
    const before = statesShown(environment, names);
    const shown = pins(preview, "target_version");
    await api("POST", `/api/environments/${environment.key}/import`, {
      document: document_, reason: reason || undefined,
      expected_versions: shown, expected_definition_versions: pins(preview, "definition_version"),
    });
    notify(`${file.name} imported into ${environment.title}: ${names.length} flag${names.length === 1 ? "" : "s"} changed.`, "done",
      batchUndo(environment, before, names, (name) => shown[name]));
  } catch (error) { notify(error.message); }
  $("import-file").value = "";
}

// A form in the editor dialog; `fields` are [name, label, kind, value, options]; resolves to whether it was saved.
// A refusal from the server appears beside the field it names (its `field`), else at the foot of the form.
function editor(title, fields, save) {
  const dialog = $("editor");
  $("editor-title").textContent = title;
  $("editor-error").textContent = "";
  const inputs = {};
  $("editor-fields").replaceChildren(...fields.map(([name, label, kind, value, options]) => {
    if (kind === "variants") {
      const list = variantsEditor(value || []);
      inputs[name] = list;
      return list.node;
    }
    const wrapper = document.createElement("label");
    wrapper.className = "field";
    wrapper.append(document.createTextNode(label + " "));
    let input;
    if (kind === "select") {
      input = document.createElement("select");
      for (const option of options) input.append(new Option(option, option));
      input.value = value;
    } else if (kind === "checkbox") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = Boolean(value);
      wrapper.className = "check field";
    } else {
      input = document.createElement("input");
      input.type = kind;
      input.value = value === undefined || value === null ? "" : value;
    }
    input.id = `editor-${name}`;
    input.dataset.field = name;
    inputs[name] = input;
    wrapper.append(input);
    return wrapper;
  }));
  return modal(dialog, $("editor-form"), $("editor-cancel"), async (finish) => {
    const values = Object.fromEntries(Object.entries(inputs).map(([name, input]) =>
      [name, input.read ? input.read() : input.type === "checkbox" ? input.checked : input.value]));
    try {
      await save(values);
      finish(true);
    } catch (error) {
      showFieldError($("editor-form"), error, $("editor-error"));
    }
  }).then((saved) => saved === true);
}

// A flag's variants as rows of name, value and description; `read()` gives them as typed (values still text).
function variantsEditor(variants) {
  const rows = variants.map((variant) => ({ name: variant.name, value: typeof variant.value === "string" ? variant.value : JSON.stringify(variant.value), description: variant.description || "" }));
  const node = document.createElement("fieldset");
  node.dataset.field = "variants";
  const draw = () => {
    const legend = document.createElement("legend");
    legend.textContent = "Variants (named values; states and rules can serve them by name)";
    const lines = rows.map((row, index) => {
      const line = document.createElement("div");
      line.className = "row field";
      for (const [key, placeholder] of [["name", "name (control, treatment)"], ["value", "value"], ["description", "what it is for (optional)"]]) {
        const input = document.createElement("input");
        input.value = row[key];
        input.placeholder = placeholder;
        input.setAttribute("aria-label", `Variant ${index + 1} ${key}`);
        input.dataset.field = `variants[${index}]${key === "name" ? "" : "." + key}`;
        input.addEventListener("input", () => { row[key] = input.value; });
        line.append(input);
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove variant ${index + 1}`);
      remove.addEventListener("click", () => { rows.splice(index, 1); draw(); });
      line.append(remove);
      return line;
    });
    const add = document.createElement("button");
    add.type = "button";
    add.className = "small";
    add.textContent = "Add a variant";
    add.addEventListener("click", () => { rows.push({ name: "", value: "", description: "" }); draw(); });
    node.replaceChildren(legend, ...lines, add);
  };
  draw();
  return { node, read: () => rows.map((row) => ({ ...row })) };
}

// Variants as the API takes them, each value read as the flag's type; a value that does not read is refused beside it.
function variantsOf(rows, type) {
  return rows.filter((row) => row.name.trim() || row.value.trim()).map((row, index) => {
    let value;
    try { value = typedValue(row.value, type); } catch (error) { throw fieldError(`variants[${index}].value`, error.message); }
    const variant = { name: row.name.trim(), value };
    if (row.description.trim()) variant.description = row.description.trim();
    return variant;
  });
}

// Constraints on a flag's values: allowed values for strings, a range for numbers (empty: none).
function constraintsOf(values, type, body) {
  if (type === "string" && values.allowed.trim()) body.allowed_values = values.allowed.split(",").map((value) => value.trim()).filter(Boolean);
  for (const bound of ["min", "max"]) {
    if (type === "number" && values[bound].trim()) {
      const number = Number(values[bound]);
      if (!Number.isFinite(number)) throw fieldError(bound, `\`${values[bound]}\` is not a number`);
      body[bound] = number;
    }
  }
}

// Text typed for a value of `type`: JSON where it parses (numbers, booleans, objects), plain text for strings.
function typedValue(text, type) {
  if (type === "string") return text;
  try { return JSON.parse(text); } catch (error) { throw new Error(`\`${text}\` is not a valid ${type} value`); }
}

const CRITICALITIES = ["low", "medium", "high", "critical"];

async function newFlag() {
  let created = null;
  const saved = await editor("New flag", [
    ["name", "Name (category.snake_case)", "text", ""],
    ["type", "Type", "select", "boolean", ["boolean", "string", "number", "json"]],
    ["default", "Default (empty: false, \"\", 0 or {})", "text", ""],
    ["variants", "Variants", "variants", []],
    ["description", "Description", "text", ""],
    ["owner", "Owner", "text", ""],
    ["tags", "Tags (comma-separated)", "text", ""],
    ["criticality", "Criticality", "select", "medium", CRITICALITIES],
    ["allowed", "Allowed values (string flags; comma-separated, empty: any)", "text", ""],
    ["min", "Minimum (number flags)", "number", ""],
    ["max", "Maximum (number flags)", "number", ""],
  ], async (values) => {
    const body = { name: values.name.trim(), type: values.type, description: values.description, criticality: values.criticality,
                   tags: values.tags.split(",").map((tag) => tag.trim()).filter(Boolean) };
    if (values.default.trim()) {
      try { body.default = typedValue(values.default.trim(), values.type); } catch (error) { throw fieldError("default", error.message); }
    }
    if (values.owner.trim()) body.owner = values.owner.trim();
    const variants = variantsOf(values.variants, values.type);
    if (variants.length) body.variants = variants;
    constraintsOf(values, values.type, body);
    created = await api("POST", "/api/flags", body);
  });
  if (saved && created) {
    notify(`${created.name} defined: disabled in every environment.`, "done");
    await openFlag(created.name);
  }
}

async function editDefinition(flag) {
  const saved = await editor(`Edit ${flag.name} (${flag.type})`, [
    ["description", "Description", "text", flag.description],
    ["owner", "Owner", "text", flag.owner || ""],
    ["tags", "Tags (comma-separated)", "text", (flag.tags || []).join(", ")],
    ["criticality", "Criticality", "select", flag.criticality, CRITICALITIES],
    ["default", "Default", "text", flag.type === "string" ? flag.default : JSON.stringify(flag.default)],
    ["variants", "Variants", "variants", flag.variants || []],
    ...(flag.type === "string" ? [["allowed", "Allowed values (comma-separated, empty: any)", "text", (flag.allowed_values || []).join(", ")]] : []),
    ...(flag.type === "number" ? [["min", "Minimum", "number", flag.min ?? ""], ["max", "Maximum", "number", flag.max ?? ""]] : []),
    ["deprecated", "Deprecated", "checkbox", flag.deprecated],
    ["reason", "Reason (needed when the change alters what a protected environment serves)", "text", ""],
  ], async (values) => {
    let defaultValue;
    try { defaultValue = typedValue(values.default, flag.type); } catch (error) { throw fieldError("default", error.message); }
    const body = {
      description: values.description, owner: values.owner, criticality: values.criticality, deprecated: values.deprecated,
      tags: values.tags.split(",").map((tag) => tag.trim()).filter(Boolean), default: defaultValue,
      variants: variantsOf(values.variants, flag.type),
    };
    // Empty allowed values remove the constraint.
    if (flag.type === "string") body.allowed_values = values.allowed.split(",").map((value) => value.trim()).filter(Boolean);
    if (flag.type === "number") constraintsOf({ ...values, allowed: "" }, flag.type, body);
    // A definition can change what an environment serves (a disabled flag's default): the server says where.
    const impact = await api("PATCH", `/api/flags/${flag.name}`, { ...body, dry_run: true });
    const protectedServing = impact.affects.filter((affected) => affected.protected && affected.effect === "serving");
    const where = protectedServing.map((affected) => affected.name).join(", ");
    if (protectedServing.length && panel.me.role !== "admin") {
      throw new Error(`this changes what ${where} serves, which only an admin can change; nothing was saved`);
    }
    if (protectedServing.length && !values.reason.trim()) {
      throw fieldError("reason", `this changes what ${where} serves: give a reason`);
    }
    if (values.reason.trim()) body.reason = values.reason.trim();
    // The form holds every field as loaded: If-Match keeps it from overwriting an edit made since.
    await api("PATCH", `/api/flags/${flag.name}`, body, { "If-Match": `"${flag.version}"` });
  });
  if (saved) {
    notify(`${flag.name}: definition saved.`, "done");
    if (panel.flagPage === flag.name && !$("flag-view").hidden) await openFlag(flag.name, false);
  }
}

async function setState(flag, environment) {
  const current = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}`);
  const state = current.state;
  // This quick form sets on/off, the value and a boolean rollout. A state with targets, rules, a split of other values,
  // or variants to choose from is edited whole in the targeting editor, where nothing of it is hidden.
  const rolloutOnly = !state.split || (flag.type === "boolean" && state.split.buckets.every((bucket) => typeof bucket.serve.value === "boolean"));
  if ((flag.variants || []).length || state.targets.length || state.rules.length || !rolloutOnly) return editTargeting(flag, environment);
  const rollout = state.split && flag.type === "boolean"
    ? state.split.buckets.filter((bucket) => bucket.serve.value === true).reduce((sum, bucket) => sum + bucket.weight, 0) / 1000 : "";
  const fields = [["enabled", "Enabled", "checkbox", state.enabled]];
  const bounds = flag.type === "number" && (flag.min !== undefined || flag.max !== undefined) ? ` (${flag.min ?? "any"} to ${flag.max ?? "any"})` : "";
  const allowed = flag.allowed_values ? ` (one of ${flag.allowed_values.join(", ")})` : "";
  fields.push(["serve", `Value served${bounds}${allowed}`, "text", flag.type === "string" ? state.serve.value : JSON.stringify(state.serve.value)]);
  if (flag.type === "boolean") fields.push(["rollout", "Rollout % (empty: everyone)", "number", rollout]);
  if (environment.protected) fields.push(["reason", "Reason (required in a protected environment)", "text", ""]);
  await editor(`Set ${flag.name} in ${environment.name}`, fields, async (values) => {
    let value;
    try { value = typedValue(values.serve, flag.type); } catch (error) { throw fieldError("serve", error.message); }
    const body = { enabled: values.enabled, serve: { value }, targets: state.targets, rules: state.rules, split: state.split || null };
    if (flag.type === "boolean") {
      const percent = values.rollout === "" ? null : Number(values.rollout);
      if (percent !== null && !(percent >= 0 && percent <= 100)) throw new Error("rollout must be between 0 and 100");
      const share = percent === null ? null : Math.round(percent * 1000);
      body.split = share === null || share === 100000 ? null
        : { buckets: [{ serve: { value: true }, weight: share }, { serve: { value: false }, weight: 100000 - share }] };
    }
    if (values.reason) body.reason = values.reason;
    const headers = { "Content-Type": "application/json", "If-Match": `"${state.version}"`, "X-CSRF-Token": panel.me.csrf };
    const response = await fetch(`/api/flags/${flag.name}/environments/${environment.key}`, { method: "PUT", headers, body: JSON.stringify(body), credentials: "same-origin" });
    if (!response.ok) {
      const error = await response.json().catch(() => null);
      throw new Error(error && error.error ? error.error.message : `the server answered ${response.status}`);
    }
  });
}

// Whether the guard watches this state: an enabled state a person set in a protected environment, within the window.
function guarded(state, environment) {
  if (!state || !state.enabled || !environment.guard_window_seconds || state.updated_by.startsWith("system:")) return false;
  return Date.now() - Date.parse(state.updated_at) < environment.guard_window_seconds * 1000;
}

// What the guard's last look saw, in a sentence.
function guardSentence(guard, planRunning = false) {
  if (!guard.watched && planRunning) return `Guard: has not looked at this rollout yet (it looks every ${guard.settings.check_seconds} s).`;
  if (!guard.watched) return "Guard: not watching (no rollout running and no recent change in a protected environment).";
  const report = guard.report;
  const percent = (rate) => `${(rate * 100).toFixed(2)} %`;
  const parts = report.comparisons.map((comparison) =>
    `${percent(comparison.verdict.candidate_rate)} (${comparison.candidate.errors}/${comparison.candidate.evaluations}) against ` +
    `${percent(comparison.verdict.baseline_rate)} (${comparison.baseline.errors}/${comparison.baseline.evaluations}) ` +
    (comparison.against === "old variant" ? "for the old variant" : "in the hour before the change"));
  const until = report.until ? ` until ${when(report.until)}` : "";
  const candidate = report.candidate.length ? ` New variant: ${report.candidate.join(", ")}:` : "";
  return `Guard (${report.watching}${until}): ${report.decision}.${candidate} ${parts.join("; ")}${parts.length ? "." : ""} Checked ${when(report.checked_at)}.`;
}

// A rollout's progress (or a guarded change's watch), its error rates over time as a small chart, and its controls.
async function openPlan(flag, environment) {
  const dialog = $("plan");
  const load = async () => {
    const status = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}/rollout`);
    const metrics = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}/metrics?since=1h`);
    const guard = await api("GET", `/api/flags/${flag.name}/environments/${environment.key}/guard`);
    const plan = status.plan;
    $("plan-title").textContent = `${plan ? "Rollout" : "Guard"} of ${flag.name} in ${environment.title}`;
    $("plan-guard").textContent = guardSentence(guard, Boolean(plan));
    if (!plan) {
      $("plan-progress").textContent = status.enabled ? `No rollout in progress; serving ${status.percent} %.` : "No rollout in progress; disabled.";
    } else {
      const steps = plan.steps.map((step, index) => (index + 1 === plan.next_step ? `[${step / 1000} %]` : `${step / 1000} %`)).join(" → ");
      $("plan-progress").textContent = `At ${status.percent} %: step ${plan.next_step} of ${plan.steps.length} (${steps})` +
        (plan.paused ? ", paused" : `, next step due ${when(plan.next_at)}`) + `; started by ${plan.started_by}.` +
        (status.waiting ? ` Holding: ${status.waiting}.` : "");
    }
    for (const id of ["plan-pause", "plan-resume", "plan-abort"]) $(id).disabled = !plan || Boolean(mayChange(environment));
    if (plan) { $("plan-pause").hidden = plan.paused; $("plan-resume").hidden = !plan.paused; }
    drawChart(metrics.buckets);
    // No chart without data: the totals say there is none.
    $("plan-chart").closest("figure").hidden = !metrics.buckets.length;
    const totals = Object.entries(metrics.totals).map(([variant, total]) =>
      `${variant}: ${(total.error_rate * 100).toFixed(2)} % errors (${total.errors}/${total.evaluations})`);
    $("plan-totals").textContent = totals.length ? totals.join("; ")
      : "No metrics reported yet: SDKs report evaluations and errors (the Rust SDK does by itself; other clients POST them to /api/feature-flags/metrics), and a guarded step waits for them.";
  };
  const control = (action) => async () => {
    let reason;
    if (environment.protected) {
      const title = `${action[0].toUpperCase()}${action.slice(1)} the rollout of ${flag.name} in ${environment.name}`;
      reason = await confirmChange(title, environment, `rollout: ${action}`, false);
      if (reason === null) return;
    }
    try { await api("POST", `/api/flags/${flag.name}/environments/${environment.key}/rollout/${action}`, reason ? { reason } : {}); await load(); }
    catch (error) { notify(error.message); }
  };
  $("plan-pause").onclick = control("pause");
  $("plan-resume").onclick = control("resume");
  $("plan-abort").onclick = control("abort");
  $("plan-close").onclick = () => dialog.close();
  try { await load(); } catch (error) { notify(error.message); return; }
  dialog.showModal();
}

// Error rate per minute for the new (true) and old (false) variants, as two polylines.
function drawChart(buckets) {
  const svg = $("plan-chart");
  const namespace = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const minutes = [...new Set(buckets.map((bucket) => bucket.at))].sort();
  const rate = (bucket) => (bucket.evaluations ? bucket.errors / bucket.evaluations : 0);
  const highest = Math.max(0.01, ...buckets.map(rate));
  for (const [variant, colour] of [["true", "#c0392b"], ["false", "#2e6fd8"]]) {
    const points = minutes.map((minute, index) => {
      const bucket = buckets.find((candidate) => candidate.at === minute && candidate.variant === variant);
      if (!bucket) return null;
      const x = minutes.length === 1 ? 240 : 10 + (index * 460) / (minutes.length - 1);
      const y = 150 - (rate(bucket) / highest) * 140;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).filter(Boolean);
    if (!points.length) continue;
    const line = document.createElementNS(namespace, "polyline");
    line.setAttribute("points", points.length === 1 ? `${points[0]} ${points[0]}` : points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("stroke-linecap", "round");
    line.dataset.variant = variant;
    svg.append(line);
  }
}

// Takes a flag's definition and its state in one environment from the stream; returns the flag as the page now has it.
function remember(name, definition, environment, state, words) {
  const current = panel.flags.get(name) || { ...definition, category: name.split(".")[0], environments: {}, summaries: {} };
  const updated = {
    ...current,
    ...definition,
    environments: { ...current.environments, [environment.key]: state },
    summaries: { ...current.summaries, [environment.key]: words },
  };
  panel.flags.set(name, updated);
  return updated;
}

// Whether the page hears every change: live (every stream open), reconnecting (a stream lost its connection and the
// browser is trying again; what changed meanwhile arrives when it is back), or offline (a stream gave up).
function showConnection() {
  const states = panel.streams ? panel.streams.states() : [];
  const [word, kind] = states.some((state) => state === EventSource.CLOSED) ? ["Offline: changes are not shown", "offline"]
    : states.some((state) => state === EventSource.CONNECTING) ? ["Reconnecting…", "reconnecting"] : ["Live", "live"];
  const indicator = $("connection");
  indicator.textContent = word;
  indicator.className = `connection is-${kind}`;
  $("reconnect").hidden = kind !== "offline";
  // A stream that gave up may have been refused: if the session ended, the login form says so.
  if (kind === "offline" && panel.me) api("GET", "/api/me").catch(() => {});
}

function closeStreams() {
  if (panel.streams) panel.streams.close();
  panel.streams = null;
}

// A change replaces the flag's state in that environment.
function changed(environment, data) {
  const change = JSON.parse(data);
  const updated = remember(change.flag, change.definition, environment, change.state, change.summary);
  render();
  flagChanged(change.flag);
  const cell = document.querySelector(`tr[data-flag="${CSS.escape(change.flag)}"] td[data-environment="${environment.key}"]`);
  if (cell) cell.classList.add("flash");
  $("live").textContent = `${change.flag} in ${environment.name}: ${summary(updated, environment.key)} — by ${change.state.updated_by}`;
}

// A snapshot comes first on every connection, and again when the server could not replay what this page missed
// (a reconnection past retention, a server that reloaded): it is the environment's whole truth.
function snapshotted(environment, data) {
  const snapshot = JSON.parse(data);
  let any = false;
  for (const { definition, state, summary: words } of snapshot.flags) {
    const current = panel.flags.get(definition.name);
    // Usually (on connecting) the page already shows exactly this: re-rendering then would only disturb the user.
    if (current && JSON.stringify(current.environments[environment.key]) === JSON.stringify(state) &&
        current.version === definition.version) continue;
    remember(definition.name, definition, environment, state, words);
    flagChanged(definition.name);
    any = true;
  }
  if (any) render();
}

// One stream per environment, authenticated by the session cookie. Where the browser has shared workers, every tab of
// the panel shares the same streams (streams.js): a browser gives a server six connections, and three streams per tab
// left a second tab with none for anything else. Elsewhere (phones' browsers) the page opens its own.
function follow(fresh = false) {
  closeStreams();
  const byKey = (key) => panel.environments.find((environment) => environment.key === key);
  if (window.SharedWorker) {
    const port = new SharedWorker("/streams.js", { name: "vexil-streams" }).port;
    const states = new Map();
    port.onmessage = ({ data }) => {
      const environment = byKey(data.environment);
      if (!environment) return;
      if (data.type === "connection") { states.set(environment.key, data.readyState); showConnection(); }
      else if (data.type === "change") changed(environment, data.data);
      else if (data.type === "snapshot") snapshotted(environment, data.data);
    };
    port.start();
    port.postMessage({ type: "follow", environments: panel.environments.map((environment) => environment.key), fresh });
    panel.streams = {
      states: () => panel.environments.map((environment) => (states.has(environment.key) ? states.get(environment.key) : EventSource.CONNECTING)),
      close: () => { port.postMessage({ type: "leave" }); port.close(); },
    };
  } else {
    const sources = panel.environments.map((environment) => {
      const source = new EventSource(`/api/feature-flags/stream?env=${environment.key}`);
      source.addEventListener("open", showConnection);
      source.addEventListener("error", showConnection);
      source.addEventListener("change", (event) => changed(environment, event.data));
      source.addEventListener("snapshot", (event) => snapshotted(environment, event.data));
      return source;
    });
    panel.streams = { states: () => sources.map((source) => source.readyState), close: () => { for (const source of sources) source.close(); } };
  }
  showConnection();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/api/auth/session", { email: $("email").value, password: $("password").value });
      $("login-error").textContent = "";
      await start(true);
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });
  // Light or dark: the system's preference until the user chooses, then their choice (kept in this browser).
  const applyTheme = (theme) => {
    if (theme) document.documentElement.dataset.theme = theme; else delete document.documentElement.dataset.theme;
    const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    $("theme").setAttribute("aria-pressed", String(dark));
    $("theme").textContent = dark ? "Light theme" : "Dark theme";
  };
  applyTheme(localStorage.getItem("vexil-theme"));
  $("theme").addEventListener("click", () => {
    const dark = $("theme").getAttribute("aria-pressed") === "true";
    localStorage.setItem("vexil-theme", dark ? "light" : "dark");
    applyTheme(dark ? "light" : "dark");
  });
  $("logout").addEventListener("click", async () => {
    try { await api("DELETE", "/api/auth/session"); } finally {
      closeStreams();
      panel.me = null;
      show("login");
    }
  });
  // Reconnecting reloads the page's data first: what changed while it was offline is shown, not only what changes next.
  $("reconnect").addEventListener("click", () => { start(true).catch((error) => notify(error.message)); });
  $("filter").addEventListener("input", () => { panel.page = 1; render(); writeLocation(false); });
  $("state-filter").addEventListener("change", () => { panel.page = 1; render(); writeLocation(false); });
  $("sort").addEventListener("change", () => { panel.page = 1; render(); writeLocation(false); });
  // Arrow keys move between the matrix's controls: along a row through every control, and up and down to the same
  // control of the next row that has it; "/" goes to the filter.
  $("matrix-body").addEventListener("keydown", (event) => {
    const moves = { ArrowUp: -1, ArrowDown: 1, ArrowLeft: -1, ArrowRight: 1 };
    const row = event.target.closest("tr[data-flag]");
    if (!(event.key in moves) || !row) return;
    const controls = (tr) => [...tr.querySelectorAll("button:not([disabled]), input:not([disabled])")].filter((control) => control.offsetParent !== null);
    const mine = controls(row);
    const index = mine.indexOf(event.target);
    if (index < 0) return;
    let target;
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      target = mine[index + moves[event.key]];
    } else {
      // The same control: the same cell, the same place in it.
      const cell = event.target.closest("td, th");
      const column = [...row.children].indexOf(cell);
      const place = controls(cell).indexOf(event.target);
      const rows = [...$("matrix-body").querySelectorAll("tr[data-flag]")];
      for (let other = rows.indexOf(row) + moves[event.key]; other >= 0 && other < rows.length && !target; other += moves[event.key]) {
        const there = rows[other].children[column];
        target = there && controls(there)[place];
      }
    }
    if (target) { event.preventDefault(); target.focus(); }
  });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (event.key === "/" && !typing && !document.querySelector("dialog[open]") && !$("flags-view").hidden) {
      event.preventDefault();
      $("filter").focus();
    }
  });
  const turn = (by) => () => { panel.page += by; render(); writeLocation(true); $("matrix").scrollIntoView({ block: "start" }); };
  $("page-previous").addEventListener("click", turn(-1));
  $("page-next").addEventListener("click", turn(1));
  // A page left for another (or kept in the back-forward cache) gives its streams back at once: a browser has six
  // connections per server, and streams that outlive their page starve the next page's requests.
  window.addEventListener("pagehide", closeStreams);
  window.addEventListener("pageshow", (event) => { if (event.persisted && panel.me) start().catch((error) => notify(error.message)); });
  window.addEventListener("popstate", () => { if (panel.me) applyLocation().catch((error) => notify(error.message)); });
  $("bulk-enable").addEventListener("click", () => bulk("enable"));
  $("bulk-disable").addEventListener("click", () => bulk("disable"));
  $("copy").addEventListener("click", copyInto);
  $("export").addEventListener("click", exportFocus);
  $("import-file").addEventListener("change", () => { const file = $("import-file").files[0]; if (file) importFile(file); });
  $("history-all").addEventListener("click", () => openHistory(null));
  $("new-flag").addEventListener("click", newFlag);
  $("history-apply").addEventListener("click", () => openHistory(panel.historyFlag, false));
  for (const action of ACTIONS) {
    const option = document.createElement("option");
    option.value = action;
    option.textContent = action;
    $("history-action").append(option);
  }
  $("history-close").addEventListener("click", () => { show("flags-view"); writeLocation(true); });
  $("access").addEventListener("click", () => openAccess());
  $("access-back").addEventListener("click", () => { show("flags-view"); render(); writeLocation(true); });
  $("user-add").addEventListener("click", addUser);
  $("token-new").addEventListener("click", () => createToken(false));
  $("sdk-key-new").addEventListener("click", () => createToken(true));
  $("client-key-new").addEventListener("click", () => createToken(true, true));
  $("flag-back").addEventListener("click", () => { panel.flagPage = null; show("flags-view"); render(); writeLocation(true); });
  start();
});

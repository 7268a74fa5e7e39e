// Who may do what (`/?view=access`): users and their roles (admins), personal tokens and SDK keys, and a flag's
// monitoring triggers (on its page). A secret (a token, a key, a generated password, a trigger's URL) is shown once,
// with a button that copies it. Loaded after panel.js and flag.js, whose helpers it uses.
"use strict";

async function openAccess(push = true) {
  show("access-view");
  writeLocation(push);
  await renderAccess();
}

async function renderAccess() {
  const admin = panel.me.role === "admin";
  $("users-section").hidden = !admin;
  $("access-note").textContent = admin
    ? "As an admin you see every user, and every token and key."
    : `Your role is ${panel.me.role}: you see your own tokens and the SDK keys you made. Users are managed by admins.` +
      (panel.me.role === "viewer" ? " SDK keys are made by developers (for unprotected environments) and admins." : "");
  $("sdk-key-new").disabled = panel.me.role === "viewer";
  $("client-key-new").disabled = panel.me.role === "viewer";
  try {
    const [users, tokens] = await Promise.all([admin ? api("GET", "/api/users") : Promise.resolve([]), api("GET", "/api/tokens")]);
    $("users-body").replaceChildren(...users.map(userRow));
    const shown = tokens.filter((token) => !token.revoked_at);
    $("tokens-body").replaceChildren(...(shown.length ? shown.map(tokenRow) : [h("tr", {}, h("td", { colSpan: 6, class: "muted" }, "No tokens or keys yet."))]));
  } catch (error) { notify(error.message); }
}

function userRow(user) {
  const self = user.email === panel.me.email;
  const role = h("select", { "aria-label": `Role of ${user.email}`, disabled: self, title: self ? "Another admin changes your role" : undefined },
    ["viewer", "developer", "admin"].map((name) => new Option(name, name)));
  role.value = user.role;
  role.addEventListener("change", () => changeUser(user, { role: role.value }, `${user.email} is now ${role.value}.`));
  return h("tr", { dataset: { user: user.email } },
    h("th", { scope: "row" }, user.email),
    h("td", { dataset: { label: "Role" } }, role),
    h("td", { dataset: { label: "Status" } }, h("span", { class: user.disabled ? "off" : "on" }, user.disabled ? "Disabled" : "Active")),
    h("td", { dataset: { label: "Added" } }, user.created_at.slice(0, 10)),
    h("td", {}, h("div", { class: "card-actions" },
      h("button", { type: "button", class: "small", disabled: self, "aria-label": `${user.disabled ? "Enable" : "Disable"} ${user.email}`,
        onclick: () => changeUser(user, { disabled: !user.disabled }, `${user.email} ${user.disabled ? "can log in again" : "is disabled: their sessions and tokens stop working"}.`) },
        user.disabled ? "Enable" : "Disable"),
      h("button", { type: "button", class: "small", "aria-label": `Set the password of ${user.email}`, onclick: () => setPassword(user) }, "Set password…"))));
}

async function changeUser(user, change, done) {
  try {
    await api("PATCH", `/api/users/${encodeURIComponent(user.email)}`, change);
    notify(done, "done");
  } catch (error) { notify(error.message); }
  await renderAccess();
}

async function setPassword(user) {
  await editor(`Set the password of ${user.email}`, [["password", "New password (8 to 200 characters; it ends their other sessions and tokens)", "password", ""]], async (values) => {
    await api("PATCH", `/api/users/${encodeURIComponent(user.email)}`, { password: values.password });
    notify(`${user.email}: password set.`, "done");
  });
}

async function addUser() {
  let added = null;
  await editor("Add a user", [
    ["email", "Email", "email", ""],
    ["role", "Role (viewer reads; developer changes unprotected environments; admin everything)", "select", "developer", ["viewer", "developer", "admin"]],
    ["password", "Password (empty: one is generated and shown once)", "password", ""],
  ], async (values) => {
    const body = { email: values.email.trim(), role: values.role };
    if (values.password) body.password = values.password;
    added = await api("POST", "/api/users", body);
  });
  if (!added) return;
  if (added.password) revealSecret(`${added.email} added`, "Their password, shown once: give it to them over a safe channel.", added.password);
  else notify(`${added.email} added as ${added.role}.`, "done");
  await renderAccess();
}

function tokenRow(token) {
  const kind = token.kind === "sdk" ? "SDK key" : token.kind === "client" ? "Client-side key" : token.kind === "trigger"
    ? `Trigger: ${token.action === "rollback" ? "rolls back" : "turns off"} ${token.flag}` : "Personal token";
  return h("tr", { dataset: { token: token.id } },
    h("th", { scope: "row" }, token.name),
    h("td", { dataset: { label: "Kind" } }, kind),
    h("td", { dataset: { label: "Environment" } }, token.environment || "—",
      token.origins?.length ? h("div", { class: "muted" }, `pages of ${token.origins.join(", ")}`) : null),
    h("td", { dataset: { label: "User" } }, token.user),
    h("td", { dataset: { label: "Made" } }, token.created_at.slice(0, 16).replace("T", " ")),
    h("td", {}, h("button", { type: "button", class: "small", "aria-label": `Revoke ${token.name}`, onclick: () => revoke(token, kind) }, "Revoke…")));
}

async function revoke(token, kind) {
  const reason = await confirmChange(`Revoke ${token.name}`, { protected: false, name: "" },
    `${kind}${token.environment ? ` for ${token.environment}` : ""}: whatever uses it is refused from now on, and its open streams end.`, false);
  if (reason === null) return;
  try {
    await api("DELETE", `/api/tokens/${encodeURIComponent(token.id)}`);
    notify(`${token.name} revoked.`, "done");
  } catch (error) { notify(error.message); }
  await renderAccess();
}

async function createToken(sdk, client = false) {
  let created = null;
  const fields = [["name", sdk ? "Name (the application that uses it)" : "Name (what uses it: a script, CI)", "text", ""]];
  if (sdk) fields.push(["environment", "Environment (the key reads only this one)", "select", panel.environments[0].key, panel.environments.map((environment) => environment.key)]);
  if (client) fields.push(["origins", "Allowed origins, comma separated (https://shop.example.com); empty admits any", "text", ""]);
  await editor(client ? "New client-side key" : sdk ? "New SDK key" : "New personal token", fields, async (values) => {
    const body = { kind: client ? "client" : sdk ? "sdk" : "personal" };
    if (values.name.trim()) body.name = values.name.trim();
    if (sdk) body.environment = values.environment;
    const origins = client ? values.origins.split(/[\s,]+/).filter(Boolean) : [];
    if (origins.length) body.origins = origins;
    created = await api("POST", "/api/tokens", body);
  });
  if (!created) return;
  revealSecret(client ? `Client-side key for ${created.environment}` : sdk ? `SDK key for ${created.environment}` : "Personal token",
    client ? "Shown once, though it is no secret: it goes into browser or app code. It evaluates flags of this environment for the context it sends, and never reads rules or targeting keys."
      : sdk ? "Shown once: put it in the application's configuration (VEXIL_SDK_KEY). It reads flags of this environment only, rules and targeting keys included: keep it on servers."
      : "Shown once: it acts as you (your role) until revoked. Use it as VEXIL_TOKEN or with Authorization: Bearer.", created.token);
  await renderAccess();
}

// A secret shown once, with a copy button.
function revealSecret(title, note, secret) {
  $("secret-title").textContent = title;
  $("secret-note").textContent = note;
  $("secret-value").textContent = secret;
  $("secret-copy").textContent = "Copy";
  $("secret-copy").onclick = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      $("secret-copy").textContent = "Copied";
    } catch (_) {
      // Without the clipboard (permissions), the text is selected for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents($("secret-value"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      $("secret-copy").textContent = "Selected: press Ctrl+C";
    }
  };
  $("secret-close").onclick = () => $("secret").close();
  $("secret").showModal();
}

// A flag's monitoring triggers, on its page: the URL an alerting system calls to turn it off (or roll it back).
async function renderTriggers(flag) {
  const list = $("flag-triggers");
  let tokens;
  try { tokens = await api("GET", "/api/tokens"); } catch (error) { list.replaceChildren(h("li", { class: "error" }, error.message)); return; }
  const triggers = tokens.filter((token) => token.kind === "trigger" && token.flag === flag.name && !token.revoked_at);
  list.replaceChildren(...(triggers.length ? triggers.map((trigger) => h("li", {},
    `${trigger.name}: ${trigger.action === "rollback" ? "rolls back" : "turns off"} ${flag.name} in ${trigger.environment} when called · made by ${trigger.user} `,
    h("button", { type: "button", class: "small", "aria-label": `Revoke ${trigger.name}`, onclick: async () => { await revoke(trigger, "Trigger"); await renderTriggers(flag); } }, "Revoke…")))
    : [h("li", { class: "muted" }, panel.me.role === "admin" ? "No triggers." : "No triggers you can see (admins see every trigger).")]));
  const button = $("trigger-new");
  button.disabled = panel.me.role === "viewer" || flag.archived;
  button.onclick = () => createTrigger(flag);
}

async function createTrigger(flag) {
  let created = null;
  const allowed = panel.environments.filter((environment) => !mayChange(environment));
  await editor(`New trigger for ${flag.name}`, [
    ["environment", "Environment", "select", (allowed[allowed.length - 1] || panel.environments[0]).key, allowed.map((environment) => environment.key)],
    ["action", "When called", "select", "disable", ["disable", "rollback"]],
    ["name", "Name (the alert that calls it)", "text", ""],
  ], async (values) => {
    const body = { flag: flag.name, environment: values.environment, action: values.action };
    if (values.name.trim()) body.name = values.name.trim();
    created = await api("POST", "/api/triggers", body);
  });
  if (!created) return;
  revealSecret(`Trigger: ${created.name}`, `Shown once. Your monitoring system POSTs an alert to this URL to ${created.action === "rollback" ? "roll back" : "turn off"} ${flag.name} in ${created.environment} (an Alertmanager, Grafana or Sentry alert, or an empty body). It is listed under "Monitoring triggers" on the flag's page, where it can be revoked.`, created.url);
  await renderTriggers(flag);
}

// A page of an application on its own origin, using Vexil from the browser: `?mode=react` renders a component with
// <VexilProvider> and useFlag, `?mode=openfeature` uses our provider under the official web SDK, and `?mode=plain`
// the client alone. `window.vexilTest` lets the test read what the page shows and when it changed.
import { createRoot } from "react-dom/client";
import { StrictMode, useEffect } from "react";
import { VexilProvider, useFlag, useFlags, useVexilStatus, VexilBrowserClient } from "@vexil/react";
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { VexilWebProvider } from "@vexil/browser/openfeature";

const query = new URLSearchParams(location.search);
const options = {
  url: query.get("server"),
  clientKey: query.get("key"),
  context: { targetingKey: query.get("user") ?? "user-42", email: "ada@example.com" },
  developerOverrides: query.get("dev") === "1",
  inactivityDelay: query.has("inactivity") ? Number(query.get("inactivity")) : undefined,
  metricsInterval: query.has("metrics") ? Number(query.get("metrics")) : 3_600_000,
};
const renders = [];
const fetches = [];
const platformFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  fetches.push(String(input?.url ?? input));
  return platformFetch(input, init);
};
window.vexilTest = { renders, fetches, state: () => ({ renders: renders.slice(-3), status: window.vexilTest.client?.status }) };

function Flag() {
  const enabled = useFlag("ui.new_feature", false);
  const theme = useFlag("ui.theme", "light");
  const all = useFlags();
  const status = useVexilStatus();
  useEffect(() => {
    renders.push({ at: performance.now(), enabled, theme, status });
  });
  return (
    <main>
      <p id="enabled">{String(enabled)}</p>
      <p id="theme">{theme}</p>
      <p id="status">{status}</p>
      <p id="count">{Object.keys(all).length}</p>
    </main>
  );
}

const root = document.getElementById("root");
const mode = query.get("mode") ?? "react";
if (mode === "react") {
  const client = new VexilBrowserClient(options);
  window.vexilTest.client = client;
  createRoot(root).render(<VexilProvider client={client}><Flag /></VexilProvider>);
} else if (mode === "strict") {
  // The provider makes its own client, under StrictMode (Vite's template renders so): effects run twice in development.
  createRoot(root).render(<StrictMode><VexilProvider options={options}><Flag /></VexilProvider></StrictMode>);
} else if (mode === "openfeature") {
  const provider = new VexilWebProvider(options);
  const changes = [];
  window.vexilTest.changes = changes;
  window.vexilTest.openfeature = (async () => {
    await OpenFeature.setContext(options.context);
    await OpenFeature.setProviderAndWait(provider);
    const client = OpenFeature.getClient();
    window.vexilTest.client = provider.vexil;
    client.addHandler(ProviderEvents.ConfigurationChanged, (event) => changes.push(event.flagsChanged));
    window.vexilTest.of = client;
    window.vexilTest.setContext = (context) => OpenFeature.setContext(context);
    window.vexilTest.status = () => client.providerStatus;
    return true;
  })().catch((error) => String(error));
}

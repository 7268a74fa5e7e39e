// The seed application's page: its flags through <VexilProvider>, typed by the generated featureFlags.ts, updated live.
import { createRoot } from "react-dom/client";
import { VexilProvider, useFlag, useVexilStatus } from "@vexil/react";
import type { FlagValue } from "@vexil/core";

import { featureFlagDefaults, type FeatureFlags, type FlagName } from "../featureFlags.js";

declare global {
  interface Window {
    __VEXIL__: { url: string; clientKey: string; user: string; bootstrap: Record<string, FlagValue> };
  }
}

/** A registry flag's value, typed by the registry: a misspelt name does not compile. */
function useAppFlag<F extends FlagName>(name: F): FeatureFlags[F] {
  return useFlag(name, featureFlagDefaults[name]) as FeatureFlags[F];
}

function App() {
  const newFeature = useAppFlag("ui.new_feature");
  const voice = useAppFlag("experiment.voice_v2");
  const results = useAppFlag("backend.rag_max_results");
  const status = useVexilStatus();
  return (
    <main>
      <h1>Seed app</h1>
      <p id="new-feature">{newFeature ? "The new voice panel is on" : "The classic panel"}</p>
      <p id="voice">voice pipeline: {voice}</p>
      <p id="results">up to {results} results</p>
      <p id="status">flags: {status}</p>
    </main>
  );
}

const config = window.__VEXIL__;
createRoot(document.getElementById("root")!).render(
  <VexilProvider options={{ url: config.url, clientKey: config.clientKey, context: { targetingKey: config.user }, bootstrap: config.bootstrap, defaults: featureFlagDefaults }}>
    <App />
  </VexilProvider>,
);

/**
 * `@vexil/browser`: Vexil in the browser, with a client-side key. `new VexilBrowserClient({ url, clientKey, context })`
 * answers `getBoolean(flag, fallback)` from what the server evaluated for that context, and stays current by OFREP's
 * change notices. The OpenFeature web provider is `@vexil/browser/openfeature`.
 */

export {
  type Bootstrap,
  type BrowserStatus,
  DEVELOPER_OVERRIDES_KEY,
  type EvaluatedFlag,
  VexilBrowserClient,
  type VexilBrowserOptions,
} from "./client.js";
export type { EvaluationContext, FlagDetails, FlagValue, Source } from "@vexil/core";

/**
 * `@vexil/react`: React bindings for `@vexil/browser`.
 *
 * ```tsx
 * <VexilProvider options={{ url, clientKey, context: { targetingKey: user.id } }}>
 *   <Checkout />
 * </VexilProvider>
 *
 * function Checkout() {
 *   const newCheckout = useFlag("ui.new_checkout", false);  // re-renders when the answer changes
 * }
 * ```
 *
 * Safe to render on the server: there the client only answers from its `bootstrap` (it opens no connection and
 * touches no browser API), and the first render in the browser, from the same bootstrap, hydrates to the same markup.
 */

import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";
import { type BrowserStatus, VexilBrowserClient, type VexilBrowserOptions } from "@vexil/browser";
import type { FlagDetails, FlagValue } from "@vexil/core";

const VexilContext = createContext<VexilBrowserClient | null>(null);

/** Props of {@link VexilProvider}: a client of the application's, or the settings to make one. */
export type VexilProviderProps = { readonly children?: ReactNode } & (
  | { readonly client: VexilBrowserClient; readonly options?: undefined }
  | { readonly options: VexilBrowserOptions; readonly client?: undefined }
);

/** Makes a Vexil client available to the components below it. A client made from `options` is closed on unmount. */
export function VexilProvider(props: VexilProviderProps): ReactNode {
  // Made without connecting (a render React throws away, as StrictMode's second one, opens nothing), started in an
  // effect, and closed a moment after its effect is cleaned up unless it runs again at once (StrictMode remounts).
  const [owned] = useState(() => (props.client === undefined ? new VexilBrowserClient({ ...props.options, connect: false }) : undefined));
  const closing = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    if (owned === undefined) return undefined;
    if (closing.current !== undefined) clearTimeout(closing.current);
    closing.current = undefined;
    if (props.options?.connect !== false) owned.start();
    return () => {
      closing.current = setTimeout(() => owned.close(), 0);
    };
  }, [owned]);
  return createElement(VexilContext.Provider, { value: props.client ?? owned ?? null }, props.children);
}

/** The client of the nearest {@link VexilProvider}. */
export function useVexilClient(): VexilBrowserClient {
  const client = useContext(VexilContext);
  if (client === null) throw new Error("useFlag and its siblings need a <VexilProvider> above them");
  return client;
}

/** Re-renders the component whenever any answer or the status changes. */
function useRevision(client: VexilBrowserClient): number {
  const subscribe = useCallback(
    (notify: () => void) => {
      const changes = client.onChange(notify);
      const statuses = client.onStatus(notify);
      return () => {
        changes();
        statuses();
      };
    },
    [client],
  );
  const revision = () => client.revision;
  return useSyncExternalStore(subscribe, revision, revision);
}

/** A flag's value, of the fallback's type; the component re-renders when it changes. */
export function useFlag<T extends FlagValue>(flag: string, fallback: T): T {
  const client = useVexilClient();
  useRevision(client);
  return client.get(flag, fallback);
}

/** A flag's value with why (source, reason, variant, error). */
export function useFlagDetails<T extends FlagValue>(flag: string, fallback: T): FlagDetails<T> {
  const client = useVexilClient();
  useRevision(client);
  return client.getDetails(flag, fallback);
}

/** Every flag's value by name. */
export function useFlags(): Readonly<Record<string, FlagValue>> {
  const client = useVexilClient();
  const revision = useRevision(client);
  return useMemo(() => client.all(), [client, revision]);
}

/** Where the client stands: `connecting`, `ready`, `stale` (answering from a cache or a lost connection) or `closed`. */
export function useVexilStatus(): BrowserStatus {
  const client = useVexilClient();
  useRevision(client);
  return client.status;
}

export { VexilBrowserClient, type VexilBrowserOptions } from "@vexil/browser";

/**
 * What an OpenFeature provider emits as a Vexil client's status changes, shared by the server and web providers:
 * `Stale` when the connection is lost, `Ready` when it is back, `Error` when the key was refused.
 */

/** The provider events a status change turns into (the SDK's own event names stay in the provider). */
export interface StatusEvents {
  stale(message: string): void;
  ready(): void;
  error(message: string): void;
}

/** Follows `onStatus` of a client and calls `events` for the transitions OpenFeature names. */
export function followStatus(
  onStatus: (listener: (status: string) => void) => unknown,
  lastError: () => Error | undefined,
  events: StatusEvents,
): void {
  let stale = false;
  onStatus((status) => {
    if (status === "stale") {
      stale = true;
      events.stale(lastError()?.message ?? "the connection to Vexil was lost");
    } else if (status === "ready" && stale) {
      stale = false;
      events.ready();
    } else if (status === "closed" && lastError() !== undefined) {
      events.error(lastError()?.message ?? "the client is closed");
    }
  });
}

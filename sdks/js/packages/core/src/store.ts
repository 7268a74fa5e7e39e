/**
 * The flags of one environment as the stream describes them (format version 1, docs/streaming.md): a `snapshot`
 * replaces them all, a `change` replaces one, each compiled once when it arrives. Revisions only move forward, so a
 * replayed or repeated event changes nothing.
 */

import { CompiledFlag } from "./evaluate.js";
import type { FlagDefinition, FlagState } from "./types.js";

/** The stream format version this SDK reads. */
export const STREAM_FORMAT_VERSION = 1;

/** One flag of a snapshot. */
export interface SnapshotFlag {
  definition: FlagDefinition;
  state?: FlagState | null;
}

/** The data of a `snapshot` event, and the format of bootstrap files. */
export interface Snapshot {
  version: number;
  environment: string;
  revision: number;
  flags: SnapshotFlag[];
}

/** The data of a `change` event. */
export interface Change {
  version: number;
  environment: string;
  revision: number;
  flag: string;
  /** Absent when the flag was deleted. */
  definition?: FlagDefinition | null;
  state?: FlagState | null;
}

/** A flag as the store holds it. */
export interface StoredFlag {
  readonly definition: FlagDefinition;
  readonly state: FlagState | undefined;
  readonly compiled: CompiledFlag;
}

/** Refuses payloads of a format this SDK does not know, with what to do. */
export function checkFormat(version: unknown): void {
  if (version !== STREAM_FORMAT_VERSION) {
    throw new Error(
      `stream format version ${String(version)} is not supported; this SDK reads version ${STREAM_FORMAT_VERSION}: upgrade @vexil/core`,
    );
  }
}

/** Every flag of one environment, compiled. */
export class FlagStore {
  private flags = new Map<string, StoredFlag>();
  private current = -1;
  private name = "";

  /** The revision last applied; `undefined` before any. */
  get revision(): number | undefined {
    return this.current < 0 ? undefined : this.current;
  }

  /** The environment, as the server names it; empty before any snapshot. */
  get environment(): string {
    return this.name;
  }

  /** A flag by name. */
  get(flag: string): StoredFlag | undefined {
    return this.flags.get(flag);
  }

  /** Every flag's name. */
  names(): IterableIterator<string> {
    return this.flags.keys();
  }

  /** Replaces every flag; returns the names whose definition or state differ from before. */
  applySnapshot(snapshot: Snapshot): string[] {
    checkFormat(snapshot.version);
    const next = new Map<string, StoredFlag>();
    const changed: string[] = [];
    for (const flag of snapshot.flags) {
      const before = this.flags.get(flag.definition.name);
      const state = flag.state ?? undefined;
      if (before !== undefined && same(before, flag.definition, state)) {
        next.set(flag.definition.name, before);
        continue;
      }
      next.set(flag.definition.name, { definition: flag.definition, state, compiled: CompiledFlag.compile(flag.definition, state) });
      changed.push(flag.definition.name);
    }
    for (const name of this.flags.keys()) if (!next.has(name)) changed.push(name);
    this.flags = next;
    this.current = snapshot.revision;
    this.name = snapshot.environment;
    return changed;
  }

  /** Applies one change; `false` when it is not newer than what is held. */
  applyChange(change: Change): boolean {
    checkFormat(change.version);
    if (change.revision <= this.current) return false;
    this.current = change.revision;
    if (change.definition === undefined || change.definition === null) {
      this.flags.delete(change.flag);
      return true;
    }
    const state = change.state ?? undefined;
    this.flags.set(change.flag, { definition: change.definition, state, compiled: CompiledFlag.compile(change.definition, state) });
    return true;
  }

  /** What the store holds, as a snapshot (a bootstrap file's content); `undefined` before any. */
  snapshot(): Snapshot | undefined {
    if (this.current < 0) return undefined;
    const flags = [...this.flags.values()].map((flag) =>
      flag.state === undefined ? { definition: flag.definition } : { definition: flag.definition, state: flag.state },
    );
    return { version: STREAM_FORMAT_VERSION, environment: this.name, revision: this.current, flags };
  }
}

function same(before: StoredFlag, definition: FlagDefinition, state: FlagState | undefined): boolean {
  return JSON.stringify(before.definition) === JSON.stringify(definition) && JSON.stringify(before.state) === JSON.stringify(state);
}

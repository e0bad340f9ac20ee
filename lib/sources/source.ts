/**
 * The one thing every table reader (procfs, netlink, the conntrack CLI) does.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../model/snapshot.ts";

/** Reads the conntrack table once and returns the candidates it found. */
export interface Source {
  /** `procfs`, `netlink` or `conntrack`: used in logs and metrics. */
  readonly name: string;
  /**
   * One full read of the table. Rejects (never half a table taken for whole)
   * when the read fails; the agent logs it and tries again at the next poll.
   */
  snapshot(signal?: AbortSignal, options?: SnapshotOptions): Promise<Snapshot>;
  /** Releases sockets or handles, if the source holds any. */
  close?(): void;
}

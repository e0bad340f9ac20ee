/**
 * Reads `/proc/net/nf_conntrack` as a stream and returns its candidates.
 *
 * @module
 */
import type { Snapshot } from "../entry.ts";
import { TableScanner } from "../scan.ts";
import type { Clock, Source } from "./source.ts";

/** Options for {@linkcode ProcfsSource}. */
export interface ProcfsSourceOptions {
  /** The table file; default `/proc/net/nf_conntrack`. */
  path?: string;
  /** Bytes asked of each read(2); default 256 KiB (two such buffers are kept). */
  chunkSize?: number;
  /** Keep at most this many candidates per snapshot (see `Snapshot.overflow`). */
  maxCandidates?: number;
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: Clock;
}

/** The default table file. */
export const DEFAULT_PROC_FILE = "/proc/net/nf_conntrack";

/**
 * A {@linkcode Source} over the procfs table file. It never holds the file as
 * one string: chunks go through a {@linkcode TableScanner}, and each line's
 * "formatted between" window is the start of the previous read call to the
 * end of the call that returned it (the kernel's seq_file may format a record
 * one call early and hand it out the next).
 *
 * @example
 * ```ts
 * import { ProcfsSource } from "./procfs.ts";
 * const snap = await new ProcfsSource().snapshot();
 * console.log(snap.scanned, snap.candidates.length);
 * ```
 */
export class ProcfsSource implements Source {
  readonly name = "procfs";
  readonly path: string;
  #chunkSize: number;
  #clock: Clock;
  #maxCandidates: number | undefined;
  #bufs: Uint8Array[] | undefined;

  constructor(options: ProcfsSourceOptions = {}) {
    this.path = options.path ?? DEFAULT_PROC_FILE;
    this.#chunkSize = options.chunkSize ?? 256 * 1024;
    this.#clock = options.clock ?? (() => performance.now());
    this.#maxCandidates = options.maxCandidates;
  }

  async snapshot(signal?: AbortSignal): Promise<Snapshot> {
    const startedAt = this.#clock();
    const scanner = new TableScanner({ maxCandidates: this.#maxCandidates });
    // Two buffers, reused across polls: the kernel formats the next chunk (in
    // read(2), on Deno's I/O thread) while this thread scans the current one.
    const bufs = this.#bufs ??= [new Uint8Array(this.#chunkSize), new Uint8Array(this.#chunkSize)];
    using file = await Deno.open(this.path, { read: true });
    const read = (buf: Uint8Array) => {
      const start = this.#clock();
      return file.read(buf).then((n) => ({ n, start, end: this.#clock() }));
    };
    let cur = 0;
    let pending = read(bufs[cur]);
    let prevStart = startedAt;
    try {
      for (;;) {
        const { n, start, end } = await pending;
        if (n === null) break;
        signal?.throwIfAborted();
        pending = read(bufs[1 - cur]);
        // A line in this chunk was formatted during this read call or the one before.
        scanner.push(bufs[cur].subarray(0, n), prevStart, end);
        prevStart = start;
        cur = 1 - cur;
      }
    } finally {
      // Never close the file under a read still in flight.
      await pending.catch(() => {});
    }
    scanner.end();
    return scanner.snapshot(startedAt, this.#clock());
  }
}

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
  /** Bytes asked of each read(2); default 256 KiB. */
  chunkSize?: number;
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
  #buf: Uint8Array | undefined;

  constructor(options: ProcfsSourceOptions = {}) {
    this.path = options.path ?? DEFAULT_PROC_FILE;
    this.#chunkSize = options.chunkSize ?? 256 * 1024;
    this.#clock = options.clock ?? (() => performance.now());
  }

  async snapshot(signal?: AbortSignal): Promise<Snapshot> {
    const startedAt = this.#clock();
    const scanner = new TableScanner();
    // One buffer reused across polls: the scanner copies what it keeps.
    const buf = this.#buf ??= new Uint8Array(this.#chunkSize);
    using file = await Deno.open(this.path, { read: true });
    let prevStart = startedAt;
    for (;;) {
      signal?.throwIfAborted();
      const callStart = this.#clock();
      const n = await file.read(buf);
      const callEnd = this.#clock();
      if (n === null) break;
      scanner.push(buf.subarray(0, n), prevStart, callEnd);
      prevStart = callStart;
    }
    scanner.end();
    return {
      candidates: scanner.candidates,
      scanned: scanner.scanned,
      malformed: scanner.malformed,
      firstMalformed: scanner.firstMalformed,
      startedAt,
      finishedAt: this.#clock(),
    };
  }
}

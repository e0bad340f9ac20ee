/**
 * Reads `/proc/net/nf_conntrack` as a stream and returns its candidates, and
 * the un-NATed rule's evidence (translated entries of the keys asked) from
 * the same pass.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../snapshot.ts";
import { PROC_CONNTRACK_FILE } from "../kernel.ts";
import { TableScanner } from "../scan.ts";
import type { Clock } from "../basics.ts";
import type { Source } from "./source.ts";

/** Options for {@linkcode ProcfsSource}. */
export interface ProcfsSourceOptions {
  /** The table file; default `/proc/net/nf_conntrack`. */
  path?: string;
  /** Bytes asked of each read(2); default 256 KiB. */
  chunkSize?: number;
  /**
   * Longest stretch, in milliseconds, the snapshot keeps the event loop to
   * itself before it lets other work (the HTTP probes) run; default 10.
   */
  sliceMs?: number;
  /** Keep at most this many candidates per snapshot (see `Snapshot.overflow`). */
  maxCandidates?: number;
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: Clock;
}

/**
 * A {@linkcode Source} over the procfs table file. It never holds the file as
 * one string: chunks go through a {@linkcode TableScanner}, and each line's
 * "formatted between" window is the start of the previous read call to the
 * end of the call that returned it (the kernel's seq_file may format a record
 * one call early and hand it out the next).
 *
 * Reads are synchronous, in slices: measured here, Deno's asynchronous file
 * reads cost about half as much again as `cat` on this file (each read(2)
 * hops to another thread), while synchronous ones cost what `cat` costs. So
 * the source reads and scans for at most `sliceMs`, then yields to the event
 * loop through a message channel (no timer clamping), and goes on.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root; reads this host's /proc/net/nf_conntrack.
 * import { ProcfsSource } from "./procfs.ts";
 * const snap = await new ProcfsSource().snapshot();
 * console.log(snap.scanned, snap.candidates.length);
 * ```
 */
export class ProcfsSource implements Source {
  readonly name = "procfs";
  readonly path: string;
  #chunkSize: number;
  #sliceMs: number;
  #clock: Clock;
  #maxCandidates: number | undefined;
  #buf: Uint8Array | undefined;

  constructor(options: ProcfsSourceOptions = {}) {
    this.path = options.path ?? PROC_CONNTRACK_FILE;
    this.#chunkSize = options.chunkSize ?? 256 * 1024;
    this.#sliceMs = options.sliceMs ?? 10;
    this.#clock = options.clock ?? (() => performance.now());
    this.#maxCandidates = options.maxCandidates;
  }

  async snapshot(signal?: AbortSignal, options: SnapshotOptions = {}): Promise<Snapshot> {
    const startedAt = this.#clock();
    const scanner = new TableScanner({
      maxCandidates: this.#maxCandidates,
      ...(options.evidenceFor ? { evidenceFor: options.evidenceFor } : {}),
    });
    await this.#read(scanner, startedAt, signal);
    return scanner.snapshot(startedAt, this.#clock());
  }

  async #read(scanner: TableScanner, startedAt: number, signal?: AbortSignal): Promise<void> {
    // One buffer, reused across polls: the scanner copies what it keeps.
    const buf = this.#buf ??= new Uint8Array(this.#chunkSize);
    assertRegularFile(this.path);
    using file = Deno.openSync(this.path, { read: true });
    using pause = new Pause();
    let prevStart = startedAt;
    let sliceStart = startedAt;
    for (;;) {
      signal?.throwIfAborted();
      const start = this.#clock();
      const n = file.readSync(buf);
      const end = this.#clock();
      if (n === null) break;
      // A line in this chunk was formatted during this read call or the one before.
      scanner.push(buf.subarray(0, n), prevStart, end);
      prevStart = start;
      if (this.#clock() - sliceStart >= this.#sliceMs) {
        await pause.yield();
        sliceStart = this.#clock();
      }
    }
    scanner.end();
  }
}

/**
 * Throws unless `path` is (or links to) a regular file; procfs table files
 * are. Opening a FIFO blocks until a writer comes, and reading a device or a
 * socket may block: either would freeze the whole process, probes included.
 *
 * @example
 * ```ts
 * import { assertRegularFile } from "./procfs.ts";
 * assertRegularFile("/proc/net/nf_conntrack"); // throws for a FIFO, a device, a directory
 * ```
 */
export function assertRegularFile(path: string): void {
  const st = Deno.statSync(path);
  if (st.isFile) return;
  const kind = st.isDirectory
    ? "a directory"
    : st.isFifo
    ? "a FIFO"
    : st.isCharDevice
    ? "a character device"
    : st.isBlockDevice
    ? "a block device"
    : st.isSocket
    ? "a socket"
    : "not a regular file";
  throw new TypeError(
    `${path} is ${kind}: the table must be a regular or procfs file such as ${PROC_CONNTRACK_FILE}`,
  );
}

/** Lets the event loop run pending work (I/O, timers) and comes back at once. */
class Pause {
  #channel = new MessageChannel();
  #wake: (() => void) | undefined;

  constructor() {
    this.#channel.port1.onmessage = () => this.#wake?.();
  }

  yield(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#channel.port2.postMessage(null);
    });
  }

  [Symbol.dispose](): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}

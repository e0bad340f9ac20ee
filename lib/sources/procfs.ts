/**
 * Reads `/proc/net/nf_conntrack` as a stream and returns its candidates, and
 * the un-NATed rule's evidence (translated entries of the keys asked) from
 * the same pass.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import { PROC_CONNTRACK_FILE } from "../os/kernel.ts";
import { TableScanner } from "../text/scanner.ts";
import { type Clock, yieldToIo } from "../basics.ts";
import type { Source } from "./source.ts";
import { FdFile, type FileKind } from "../os/fd_file.ts";

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
  /** Opens the table file; default {@linkcode openTable} (tests slow its reads down). */
  open?: (path: string) => TableFile;
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
 * loop through a timer (which lets sockets run too; a message channel does
 * not), and goes on.
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
  #open: (path: string) => TableFile;

  constructor(options: ProcfsSourceOptions = {}) {
    this.path = options.path ?? PROC_CONNTRACK_FILE;
    this.#chunkSize = options.chunkSize ?? 256 * 1024;
    this.#sliceMs = options.sliceMs ?? 10;
    this.#clock = options.clock ?? (() => performance.now());
    this.#maxCandidates = options.maxCandidates;
    this.#open = options.open ?? openTable;
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
    using file = this.#open(this.path);
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
        await yieldToIo();
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
 * See {@linkcode openTable}.
 *
 * @example
 * ```ts
 * import { assertRegularFile } from "./procfs.ts";
 * const dir = Deno.makeTempDirSync();
 * Deno.writeTextFileSync(`${dir}/table`, "");
 * assertRegularFile(`${dir}/table`); // a regular file passes
 * let refused = false;
 * try {
 *   assertRegularFile(dir); // throws for a FIFO, a device, a directory
 * } catch {
 *   refused = true;
 * }
 * Deno.removeSync(dir, { recursive: true });
 * refused; // => true
 * ```
 */
export function assertRegularFile(path: string): void {
  openTable(path)[Symbol.dispose]();
}

/** An open table file: synchronous reads, `null` at its end. */
export interface TableFile {
  readSync(buf: Uint8Array): number | null;
  [Symbol.dispose](): void;
}

const KIND_NAMES: Partial<Record<FileKind, string>> = {
  directory: "a directory",
  fifo: "a FIFO",
  "character device": "a character device",
  "block device": "a block device",
  socket: "a socket",
};

/**
 * Opens `path` for reading without ever blocking in open(2) (`O_NONBLOCK`:
 * a FIFO with no writer does not hold the process), then checks what was
 * opened (its type read from the descriptor, not from the path: a symlink
 * flipped between a check and the open cannot slip a FIFO in) and refuses
 * anything but a regular file. Through libc ({@linkcode FdFile}), not
 * `node:fs`, which would start Deno's Node layer (docs/benchmarks.md).
 *
 * @example
 * ```ts ignore
 * // ignore: reads this host's /proc/net/nf_conntrack.
 * import { openTable } from "./procfs.ts";
 * using file = openTable("/proc/net/nf_conntrack");
 * file.readSync(new Uint8Array(4096));
 * ```
 */
export function openTable(path: string): TableFile {
  const file = FdFile.open(path);
  if (file.kind !== "file") {
    file.close();
    const kind = KIND_NAMES[file.kind] ?? "not a regular file";
    throw new TypeError(
      `${path} is ${kind}: the table must be a regular or procfs file such as ${PROC_CONNTRACK_FILE}`,
    );
  }
  return file;
}

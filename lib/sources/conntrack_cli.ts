/**
 * Reads the table through conntrack-tools: `conntrack -L -p tcp -u UNREPLIED
 * -o extended`, once per address family, parsed by the same scanner as the
 * procfs file; the un-NATed rule's evidence by `conntrack -L --dst-nat`. For
 * kernels without `/proc/net/nf_conntrack` where FFI is not wanted.
 *
 * @module
 */
import type { Snapshot, SnapshotOptions } from "../model/snapshot.ts";
import type { Family } from "../model/tuple.ts";
import { denoRunner, type ProcessRunner } from "../os/process.ts";
import { TableScanner } from "../text/scanner.ts";
import type { Clock } from "../basics.ts";
import type { Source } from "./source.ts";

/** Options for {@linkcode ConntrackCliSource}. */
export interface ConntrackCliSourceOptions {
  /** The conntrack binary; default `conntrack`. */
  bin?: string;
  /** Kill a listing after this long; default 30 s. */
  timeoutMs?: number;
  /** Keep at most this many candidates per snapshot (see `Snapshot.overflow`). */
  maxCandidates?: number;
  clock?: Clock;
  /** Runs `conntrack` (in its own process group, killed whole at the timeout). */
  runner?: ProcessRunner;
}

/** The `conntrack -L` arguments for one family: the kernel filters by status. */
export function listArgs(family: Family): string[] {
  return ["-L", "-p", "tcp", "-u", "UNREPLIED", "-o", "extended", "-f", family];
}

/** The `conntrack -L` arguments for evidence: TCP entries whose destination was NATed. */
export function evidenceArgs(family: Family): string[] {
  return ["-L", "-p", "tcp", "--dst-nat", "-o", "extended", "-f", family];
}

/**
 * A {@linkcode Source} over `conntrack -L`. Output is streamed into a
 * {@linkcode TableScanner}; a listing that fails or times out rejects the
 * whole snapshot (never half a table taken for whole).
 *
 * @example
 * ```ts ignore
 * // ignore: needs root and conntrack; lists this host's conntrack table.
 * import { ConntrackCliSource } from "./conntrack_cli.ts";
 * const snap = await new ConntrackCliSource({ bin: "conntrack" }).snapshot();
 * console.log(snap.candidates.length);
 * ```
 */
export class ConntrackCliSource implements Source {
  readonly name = "conntrack";
  readonly bin: string;
  #timeoutMs: number;
  #clock: Clock;
  #maxCandidates: number | undefined;
  #runner: ProcessRunner;

  constructor(options: ConntrackCliSourceOptions = {}) {
    this.bin = options.bin ?? "conntrack";
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#clock = options.clock ?? (() => performance.now());
    this.#maxCandidates = options.maxCandidates;
    this.#runner = options.runner ?? denoRunner;
  }

  /**
   * One snapshot; with `options.evidenceFor`, also `conntrack -L --dst-nat`
   * of each family asked about, after the candidates' listings. When an
   * evidence listing fails, the snapshot comes without evidence (never half
   * the evidence taken for whole).
   */
  async snapshot(signal?: AbortSignal, options: SnapshotOptions = {}): Promise<Snapshot> {
    const startedAt = this.#clock();
    const scanner = new TableScanner({ maxCandidates: this.#maxCandidates });
    for (const family of ["ipv4", "ipv6"] as const) {
      await this.#list(listArgs(family), scanner, signal);
    }
    scanner.end();
    const keys = options.evidenceFor ?? [];
    if (keys.length === 0) return scanner.snapshot(startedAt, this.#clock());
    const found = new TableScanner({ evidenceFor: keys, candidates: false });
    try {
      for (const family of ["ipv4", "ipv6"] as const) {
        if (keys.some((k) => k.family === family)) {
          await this.#list(evidenceArgs(family), found, signal);
        }
      }
    } catch (e) {
      if (signal?.aborted) throw e;
      return scanner.snapshot(startedAt, this.#clock()); // no evidence: nothing proven this poll
    }
    found.end();
    return { ...scanner.snapshot(startedAt, this.#clock()), evidence: found.evidence!.read() };
  }

  async #list(args: string[], scanner: TableScanner, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const from = this.#clock();
    const r = await this.#runner.run(this.bin, args, {
      timeoutMs: this.#timeoutMs,
      signal,
      // The kernel produced these lines after the process started and before each chunk arrived.
      onStdout: (chunk) => scanner.push(chunk, from, this.#clock()),
    });
    signal?.throwIfAborted();
    if (r.spawnError !== undefined) throw new Error(r.spawnError);
    if (r.timedOut) {
      throw new Error(`${this.bin} -L did not finish in ${this.#timeoutMs} ms and was killed`);
    }
    if (r.code !== 0) {
      throw new Error(
        `${this.bin} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`,
      );
    }
  }
}

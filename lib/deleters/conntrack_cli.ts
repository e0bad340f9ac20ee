/**
 * Deletes exact tuples with conntrack-tools: `conntrack -D … --state SYN_SENT
 * -u UNREPLIED`, one process per batch through `conntrack -R -`, or one per
 * tuple.
 *
 * @module
 */
import { type ParsedTuple, parseTuple, type Tuple, tupleKey } from "../model/tuple.ts";
import { parseLine } from "../text/parse.ts";
import { denoRunner, type ProcessRunner } from "../os/process.ts";
import type { DeleteOutcome, Deleter, DeleteTarget } from "./deleter.ts";

/** Options for {@linkcode ConntrackCliDeleter}. */
export interface ConntrackCliDeleterOptions {
  /** The conntrack binary; default `conntrack` from PATH. */
  bin?: string;
  /**
   * `batch` (default): all tuples of a call through one `conntrack -R -`
   * process; `each`: one `conntrack -D` process per tuple.
   */
  mode?: "batch" | "each";
  /** Tuples per `-R` process; default 100. */
  batchSize?: number;
  /**
   * Targets one poll may hand over ({@linkcode Deleter.maxPerPoll}); default
   * 100: conntrack-tools dumps the whole table for each delete (0.33 s at
   * 100k entries), so a poll stays bounded.
   */
  maxPerPoll?: number;
  /** A process is killed after `baseTimeoutMs + perTupleTimeoutMs × tuples`; default 5 s + 1 s. */
  baseTimeoutMs?: number;
  perTupleTimeoutMs?: number;
  runner?: ProcessRunner;
}

/**
 * The `conntrack -D` arguments that delete exactly `t`, and only while it is
 * still TCP SYN_SENT with no reply seen. `t` was checked by `parseTuple`
 * (canonical addresses, ports and zone in range), so nothing unchecked ever
 * reaches a command line.
 *
 * @example
 * ```ts
 * import { deleteArgs } from "./conntrack_cli.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const r = parseTuple({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 });
 * if (r.ok) deleteArgs(r.tuple);
 * // => ["-D", "-p", "tcp", "-f", "ipv4", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "40000",
 * //     "--dport", "80", "-w", "0", "--state", "SYN_SENT", "-u", "UNREPLIED", "-o", "extended"]
 * ```
 */
export function deleteArgs(t: ParsedTuple): string[] {
  return [
    "-D",
    "-p",
    "tcp",
    "-f",
    t.family,
    "-s",
    t.src,
    "-d",
    t.dst,
    "--sport",
    String(t.sport),
    "--dport",
    String(t.dport),
    "-w",
    String(t.zone),
    "--state",
    "SYN_SENT",
    "-u",
    "UNREPLIED",
    "-o",
    "extended",
  ];
}

/** Keys of the entries conntrack printed as deleted (`-o extended` lines on stdout). */
export function deletedKeys(stdout: string): Set<string> {
  const keys = new Set<string>();
  for (const line of stdout.split("\n")) {
    const r = parseLine(line);
    if (r.kind !== "tcp") continue;
    const e = r.entry;
    keys.add(tupleKey({ family: e.family, ...e.original, zone: e.zone }));
  }
  return keys;
}

/**
 * A {@linkcode Deleter} over the conntrack binary.
 *
 * conntrack-tools 1.4.7 answers every `-D` (also each line of `-R`) by
 * dumping the whole table and deleting the entries that match all filters,
 * so the state filter makes the delete conditional: an entry that got its
 * reply in the meantime (the SYN/ACK moves it to SYN_RECV) is left alone.
 * `-u UNREPLIED` is passed too, but 1.4.7 does not apply it to `-D`: an entry
 * still SYN_SENT with SEEN_REPLY set is deleted (tests/deleters/
 * conntrack_cli_kernel_test.ts). A reply the kernel accepts moves SYN_SENT on
 * (SYN/ACK to SYN_RECV, SYN to SYN_SENT2, RST to CLOSE), so we know of no way
 * but a hand-made update to make such an entry. It cannot select an entry by
 * its conntrack id, so a target's `id` is not used: a new entry that took the
 * same tuple and is still SYN_SENT + UNREPLIED would be deleted too. The cost is one table dump
 * per tuple (0.33 s on a 100k-entry table).
 *
 * @example
 * ```ts ignore
 * // ignore: needs root; deletes from this host's conntrack table.
 * import { ConntrackCliDeleter } from "./conntrack_cli.ts";
 * const d = new ConntrackCliDeleter({ bin: "conntrack" });
 * const [o] = await d.delete([{ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 }]);
 * console.log(o.result); // "deleted", "already_gone" or "failed"
 * ```
 */
export class ConntrackCliDeleter implements Deleter {
  readonly name = "conntrack";
  readonly bin: string;
  readonly mode: "batch" | "each";
  readonly maxPerPoll: number;
  #batchSize: number;
  #baseTimeoutMs: number;
  #perTupleTimeoutMs: number;
  #runner: ProcessRunner;

  constructor(options: ConntrackCliDeleterOptions = {}) {
    this.bin = options.bin ?? "conntrack";
    this.mode = options.mode ?? "batch";
    this.#batchSize = Math.max(1, options.batchSize ?? 100);
    this.maxPerPoll = options.maxPerPoll ?? 100;
    this.#baseTimeoutMs = options.baseTimeoutMs ?? 5000;
    this.#perTupleTimeoutMs = options.perTupleTimeoutMs ?? 1000;
    this.#runner = options.runner ?? denoRunner;
  }

  /**
   * Every process killed at its timeout: one per batch of `batchSize`
   * (`baseTimeoutMs + perTupleTimeoutMs × tuples`), or one per tuple in
   * `each` mode.
   */
  worstCaseMs(count: number): number {
    const processes = this.mode === "each" ? count : Math.ceil(count / this.#batchSize);
    return processes * this.#baseTimeoutMs + count * this.#perTupleTimeoutMs;
  }

  async delete(tuples: readonly DeleteTarget[], signal?: AbortSignal): Promise<DeleteOutcome[]> {
    const out: DeleteOutcome[] = [];
    const valid: { tuple: Tuple; key: string; args: string[] }[] = [];
    for (const tuple of tuples) {
      const p = parseTuple(tuple);
      if (p.ok) valid.push({ tuple, key: tupleKey(p.tuple), args: deleteArgs(p.tuple) });
      else out.push({ tuple, result: "failed", error: `refusing tuple: ${p.problem}` });
    }
    if (this.mode === "each") {
      for (const v of valid) out.push(await this.#deleteOne(v, signal));
    } else {
      for (let i = 0; i < valid.length; i += this.#batchSize) {
        out.push(...await this.#deleteBatch(valid.slice(i, i + this.#batchSize), signal));
      }
    }
    const order = new Map(tuples.map((t, i) => [t, i]));
    return out.sort((a, b) => order.get(a.tuple)! - order.get(b.tuple)!);
  }

  async #deleteOne(
    { tuple, key, args }: { tuple: Tuple; key: string; args: string[] },
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    if (signal?.aborted) return { tuple, result: "failed", error: "shutting down" };
    const r = await this.#runner.run(this.bin, args, {
      timeoutMs: this.#baseTimeoutMs + this.#perTupleTimeoutMs,
      signal,
    });
    const failure = runFailure(this.bin, r);
    if (r.code === 0 && deletedKeys(r.stdout).has(key)) {
      return { tuple, result: "deleted" };
    }
    // conntrack exits 1 when its filters matched nothing: the entry left by itself.
    if (r.code === 1 && /\b0 flow entries have been deleted/.test(r.stderr)) {
      return { tuple, result: "already_gone" };
    }
    return { tuple, result: "failed", error: failure ?? `unexpected output: ${oneLine(r.stdout)}` };
  }

  async #deleteBatch(
    batch: { tuple: Tuple; key: string; args: string[] }[],
    signal?: AbortSignal,
  ): Promise<DeleteOutcome[]> {
    if (batch.length === 0) return [];
    if (signal?.aborted) {
      return batch.map((b) => ({ tuple: b.tuple, result: "failed", error: "shutting down" }));
    }
    const r = await this.#runner.run(this.bin, ["-R", "-"], {
      stdin: batch.map((b) => b.args.join(" ") + "\n").join(""),
      timeoutMs: this.#baseTimeoutMs + this.#perTupleTimeoutMs * batch.length,
      signal,
    });
    const deleted = deletedKeys(r.stdout);
    const failure = runFailure(this.bin, r);
    return batch.map(({ tuple, key }): DeleteOutcome => {
      if (deleted.has(key)) return { tuple, result: "deleted" };
      // `-R` prints what it deleted and nothing for lines that matched nothing.
      // When the process failed part-way, the lines it did not print are unknown: retry them.
      if (failure === undefined) return { tuple, result: "already_gone" };
      return { tuple, result: "failed", error: failure };
    });
  }
}

/** Why a run failed, or `undefined` when it exited 0. */
function runFailure(
  bin: string,
  r: { code: number; stderr: string; timedOut: boolean; spawnError?: string },
): string | undefined {
  if (r.spawnError !== undefined) return r.spawnError;
  if (r.timedOut) return `${bin} did not finish in time and was killed`;
  if (r.code === 0) return undefined;
  return `${bin} exited with code ${r.code}: ${oneLine(r.stderr) || "(no message)"}`;
}

function oneLine(s: string): string {
  const t = s.trim().replace(/\s*\n\s*/g, " | ");
  return t.length > 500 ? t.slice(0, 500) + "…" : t;
}

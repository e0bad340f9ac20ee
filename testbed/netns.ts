/**
 * Throwaway network namespaces with their own conntrack table, for the
 * end-to-end tests, the demo and the benchmarks.
 *
 * Everything here acts inside a namespace this module created (`ip netns add`)
 * and removes again ({@linkcode withNetns} deletes it after the callback,
 * also when the callback throws); nothing reads or changes the host's table.
 * Commands are argv arrays run through `ip netns exec NAME …`, never a shell
 * string. Needs root, `ip` (iproute2) and `conntrack` (conntrack-tools);
 * {@linkcode canRunKernelTests} says why not when they are missing.
 *
 * Facts measured on Linux 6.18 with conntrack-tools 1.4.7, which the
 * functions below rely on:
 *
 * - A new namespace has an empty table, and `nf_conntrack_acct` /
 *   `nf_conntrack_timestamp` are per namespace (both 0 at first). They only
 *   affect entries created after they are set: the kernel adds the
 *   counter/timestamp extension when the entry is created.
 * - `/proc/net/nf_conntrack` prints `zone=0` for zone-0 entries;
 *   `conntrack -L` leaves `zone=` out for zone 0.
 * - `conntrack -I` takes the family from the addresses (it rejects `-f`).
 *   `[UNREPLIED]` is shown exactly when the status lacks `SEEN_REPLY`.
 *   `--state LISTEN` is stored as `SYN_SENT2`. `-t 0` entries vanish at once.
 * - `conntrack -D` without `-w` deletes the tuple in every zone; with
 *   `-w Z` only in zone Z (`-w 0` included). Nothing matched: exit 1,
 *   "0 flow entries have been deleted".
 * - `conntrack -U` cannot renew an entry in a non-zero zone (see
 *   {@linkcode Netns.renew}); `conntrack -I` of an existing tuple fails with
 *   "Such conntrack exists".
 * - `conntrack -R -` (a batch of `-I …` lines on stdin) stops at the first
 *   line that fails (exit 1), keeping the entries inserted before it.
 *
 * @example
 * ```ts
 * import { canRunKernelTests, withNetns } from "./netns.ts";
 * if (await canRunKernelTests() === undefined) {
 *   await withNetns("example", async (ns) => {
 *     const spec = { src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80,
 *       state: "SYN_SENT", timeout: 120 } as const;
 *     await ns.insert(spec);
 *     await ns.renew(spec); // => true
 *     console.log(await ns.list());
 *   });
 * }
 * ```
 *
 * @module
 */
import { CtNetlinkSocket } from "./ctnetlink.ts";

/** The TCP states `conntrack --state` accepts and the kernel prints as such. */
export type TcpState =
  | "NONE"
  | "SYN_SENT"
  | "SYN_RECV"
  | "ESTABLISHED"
  | "FIN_WAIT"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "TIME_WAIT"
  | "CLOSE"
  | "SYN_SENT2";

/** One conntrack entry to create with `conntrack -I` (reply tuple = the mirror). */
export interface EntrySpec {
  /** Default `tcp`. */
  proto?: "tcp" | "udp" | undefined;
  /** IPv4 dotted quad or IPv6 (any spelling `conntrack` accepts); both of one family. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** `-w`: the zone of both directions. Default 0. */
  zone?: number | undefined;
  /** TCP state (`--state`); required for TCP, not allowed for UDP. */
  state?: TcpState | undefined;
  /**
   * `-u` status bits, comma-separated, e.g. `"SEEN_REPLY"`, or `""` for none.
   * Default: `UNREPLIED` for `SYN_SENT`, none for UDP, `SEEN_REPLY,ASSURED`
   * for every other TCP state (without `SEEN_REPLY` the kernel shows
   * `[UNREPLIED]` whatever the state).
   */
  status?: string | undefined;
  /** Seconds (`-t`); also the default value {@linkcode Netns.renew} sets. */
  timeout: number;
  /** `-m`: the conntrack mark. */
  mark?: number | undefined;
  /**
   * `--dst-nat`: where the destination was translated to, `IP:PORT` (IPv6 as
   * `[IP]:PORT`); the kernel sets `IPS_DST_NAT` and the reply tuple's source.
   */
  dnat?: string;
}

/** What a finished command left. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode Netns.exec}. */
export interface ExecOptions {
  /** Written to the command's stdin, which is then closed (default: no stdin). */
  stdin?: string | Uint8Array;
  /** Aborts (kills) the command. */
  signal?: AbortSignal;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Options for {@linkcode Netns.conntrack}. */
export interface ConntrackOptions extends ExecOptions {
  /** Throw when the exit code is not 0 (default `true`). */
  check?: boolean;
}

/** A spec's address family, from its source address. */
export function familyOf(spec: Pick<EntrySpec, "src">): "ipv4" | "ipv6" {
  return spec.src.includes(":") ? "ipv6" : "ipv4";
}

/** What a `conntrack -R` batch line may contain between its spaces. */
const SAFE_ARG = /^[A-Za-z0-9_.:,[\]-]+$/;

function checkSpec(spec: EntrySpec): void {
  const proto = spec.proto ?? "tcp";
  const where = JSON.stringify(spec);
  for (const a of [spec.src, spec.dst]) {
    // Addresses only: nothing here can be read as an option or split a batch line.
    if (!/^[0-9A-Fa-f.:]+$/.test(a)) throw new Error(`bad address in ${where}`);
  }
  if (spec.src.includes(":") !== spec.dst.includes(":")) {
    throw new Error(`mixed address families in ${where}`);
  }
  const u16 = (n: number | undefined) =>
    n === undefined || (Number.isInteger(n) && n >= 0 && n <= 65535);
  if (!u16(spec.sport) || !u16(spec.dport) || !u16(spec.zone)) {
    throw new Error(`bad port or zone in ${where}`);
  }
  const u32 = (n: number | undefined) =>
    n === undefined || (Number.isInteger(n) && n >= 0 && n <= 0xffffffff);
  if (!u32(spec.timeout) || !u32(spec.mark)) throw new Error(`bad timeout or mark in ${where}`);
  if (proto === "tcp" && spec.state === undefined) throw new Error(`TCP needs a state: ${where}`);
  if (proto === "udp" && spec.state !== undefined) throw new Error(`UDP has no state: ${where}`);
  if (
    spec.status !== undefined && spec.status !== "" && !/^[A-Z_]+(,[A-Z_]+)*$/.test(spec.status)
  ) {
    throw new Error(`bad status in ${where}`);
  }
}

/** The status bits a spec ends up with (see {@linkcode EntrySpec.status}). */
export function statusOf(spec: EntrySpec): string {
  if (spec.status !== undefined) return spec.status;
  if ((spec.proto ?? "tcp") === "udp") return "";
  return spec.state === "SYN_SENT" ? "UNREPLIED" : "SEEN_REPLY,ASSURED";
}

/**
 * Whether the kernel will show this entry as TCP `SYN_SENT` + `[UNREPLIED]`,
 * i.e. the agent's candidate: TCP, state `SYN_SENT`, no `SEEN_REPLY`.
 */
export function isCandidate(spec: EntrySpec): boolean {
  return (spec.proto ?? "tcp") === "tcp" && spec.state === "SYN_SENT" &&
    !statusOf(spec).split(",").includes("SEEN_REPLY");
}

/**
 * The `conntrack` arguments that create `spec`, starting with `-I`.
 *
 * @example
 * ```ts
 * import { insertArgs } from "./netns.ts";
 * insertArgs({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1234, dport: 80,
 *   state: "SYN_SENT", timeout: 120, zone: 5 }).join(" ");
 * // => "-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1234 --dport 80 --state SYN_SENT -u UNREPLIED -t 120 -w 5"
 * ```
 */
export function insertArgs(spec: EntrySpec): string[] {
  checkSpec(spec);
  const args = ["-I", ...tupleArgs(spec)];
  if (spec.state !== undefined) args.push("--state", spec.state);
  const status = statusOf(spec);
  if (status !== "") args.push("-u", status);
  args.push("-t", String(spec.timeout));
  if (spec.zone !== undefined && spec.zone !== 0) args.push("-w", String(spec.zone));
  if (spec.mark !== undefined) args.push("-m", String(spec.mark));
  if (spec.dnat !== undefined) args.push("--dst-nat", spec.dnat);
  return args;
}

/** `-p P -s SRC -d DST --sport N --dport N` of a spec. */
export function tupleArgs(spec: EntrySpec): string[] {
  return [
    "-p",
    spec.proto ?? "tcp",
    "-s",
    spec.src,
    "-d",
    spec.dst,
    "--sport",
    String(spec.sport),
    "--dport",
    String(spec.dport),
  ];
}

const decoder = new TextDecoder();

/** Runs a command on the host (used only for `ip netns add/del` and probes). */
async function run(cmd: string, args: string[]): Promise<ExecResult> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * One network namespace made by {@linkcode withNetns}. Valid only inside
 * the callback: the namespace is gone after it.
 */
export class Netns {
  /** The name `ip netns` knows it by. */
  readonly name: string;
  #netlink: CtNetlinkSocket | undefined;
  #children = new Set<{ child: Deno.ChildProcess; done: boolean }>();
  #closed = false;

  /** Use {@linkcode withNetns}; this only wraps an existing name. */
  constructor(name: string) {
    this.name = name;
  }

  /**
   * Runs `cmd` (argv, no shell) inside the namespace and waits for it.
   * Resolves with the exit code whatever it is; rejects only when the
   * command cannot be started.
   */
  async exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.#checkOpen();
    if (cmd.length === 0) throw new Error("exec: empty command");
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.name, ...cmd],
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
    }).spawn();
    const output = child.output();
    if (opts.stdin !== undefined) {
      const data = typeof opts.stdin === "string"
        ? new TextEncoder().encode(opts.stdin)
        : opts.stdin;
      const w = child.stdin.getWriter();
      try {
        await w.write(data);
        await w.close();
      } catch {
        // The command exited without reading all of it; its exit code says why.
      }
    }
    const out = await output;
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  }

  /**
   * Runs `conntrack ARGS…` inside the namespace. Throws on a non-zero exit
   * (with its stderr) unless `check: false`.
   */
  async conntrack(args: string[], opts: ConntrackOptions = {}): Promise<ExecResult> {
    const r = await this.exec(["conntrack", ...args], opts);
    if (r.code !== 0 && (opts.check ?? true)) {
      throw new Error(
        `conntrack ${args.join(" ")} in ${this.name} exited ${r.code}: ${r.stderr.trim()}`,
      );
    }
    return r;
  }

  /** Creates one entry (`conntrack -I`, see {@linkcode insertArgs}); throws if it fails. */
  async insert(spec: EntrySpec): Promise<void> {
    await this.conntrack(insertArgs(spec));
  }

  /**
   * Creates many entries with one `conntrack -R -` process reading one
   * `-I …` line per entry from stdin. Throws if any line fails; the batch
   * stops there, keeping the entries before it (so tuples must be unique).
   *
   * Measured here (2 cores, Linux 6.18, conntrack-tools 1.4.7): 100,000
   * SYN_SENT entries, half IPv6, a third in zone 5, in 1.0–1.2 s over two
   * runs (85,000–100,000 entries/s); 100,000 IPv4-only in 0.83 s. One
   * `conntrack -I` process per entry manages 340–450 entries/s one after
   * another and 740–800/s with 8 in parallel, so use this for anything
   * beyond a handful.
   */
  async insertMany(specs: readonly EntrySpec[]): Promise<void> {
    if (specs.length === 0) return;
    const lines = specs.map((s) => {
      const args = insertArgs(s);
      for (const a of args) if (!SAFE_ARG.test(a)) throw new Error(`bad batch argument ${a}`);
      return args.join(" ");
    });
    await this.conntrack(["-R", "-"], { stdin: lines.join("\n") + "\n" });
  }

  /**
   * Sets the timeout of the existing entry `spec` (matched by its original
   * tuple, protocol and zone) to `timeoutSec`, default `spec.timeout`, in
   * place — as a retransmitted SYN does. State, status (`[UNREPLIED]`),
   * mark and conntrack id stay as they are. Works in every zone.
   *
   * Resolves `false` when no such entry exists (e.g. the agent deleted it),
   * `true` when renewed; rejects on any other error.
   *
   * Done over ctnetlink (see `ctnetlink.ts`), about 30 µs per call
   * (29,000–35,000/s measured in a 100,000-entry table), because
   * `conntrack -U` in 1.4.7 rejects `--zone` and, without it, sends every
   * update to the zone-0 entry. {@linkcode Netns.renewWithConntrack} is
   * the CLI way for zone 0. Concurrent calls are answered one after another.
   */
  async renew(spec: EntrySpec, timeoutSec: number = spec.timeout): Promise<boolean> {
    this.#checkOpen();
    checkSpec(spec);
    this.#netlink ??= CtNetlinkSocket.open(this.name);
    return await this.#netlink.renew(spec, timeoutSec);
  }

  /**
   * Renews a zone-0 entry with `conntrack -U … -t T` (throws for another
   * zone: the CLI cannot). Resolves `false` when nothing matched. Each call
   * dumps the whole table, so it is slow on large tables; prefer
   * {@linkcode Netns.renew}.
   */
  async renewWithConntrack(spec: EntrySpec, timeoutSec: number = spec.timeout): Promise<boolean> {
    checkSpec(spec);
    if ((spec.zone ?? 0) !== 0) {
      throw new Error(`conntrack -U cannot renew an entry in zone ${spec.zone}; use renew()`);
    }
    let r = await this.conntrack(["-U", ...tupleArgs(spec), "-t", String(timeoutSec)], {
      check: false,
    });
    // `-U` walks the table; a walk cut short by concurrent deletes (the agent's) fails with
    // "Protocol error" or "Interrupted system call" (seen under load). Like a client's next
    // SYN, try again: at most twice.
    for (let i = 0; i < 2 && r.code !== 0 && /Protocol error|Interrupted/.test(r.stderr); i++) {
      r = await this.conntrack(["-U", ...tupleArgs(spec), "-t", String(timeoutSec)], {
        check: false,
      });
    }
    if (r.code === 0 && !/\b0 flow entries/.test(r.stderr)) return true;
    if (/\b0 flow entries/.test(r.stderr)) return false;
    throw new Error(`conntrack -U in ${this.name} exited ${r.code}: ${r.stderr.trim()}`);
  }

  /**
   * Deletes the entry `spec` in its zone only (`conntrack -D … -w Z`; without
   * `-w` conntrack would delete the tuple in every zone). Resolves `false`
   * when nothing matched.
   */
  async delete(spec: EntrySpec): Promise<boolean> {
    checkSpec(spec);
    const r = await this.conntrack(["-D", ...tupleArgs(spec), "-w", String(spec.zone ?? 0)], {
      check: false,
    });
    if (r.code === 0) return true;
    if (/\b0 flow entries have been deleted/.test(r.stderr)) return false;
    throw new Error(`conntrack -D in ${this.name} exited ${r.code}: ${r.stderr.trim()}`);
  }

  /** The namespace's `/proc/net/nf_conntrack`, as the kernel printed it. */
  async list(): Promise<string> {
    const r = await this.exec(["cat", "/proc/net/nf_conntrack"]);
    if (r.code !== 0) throw new Error(`cat /proc/net/nf_conntrack in ${this.name}: ${r.stderr}`);
    return r.stdout;
  }

  /** Number of entries in the table (`conntrack -C`). */
  async count(): Promise<number> {
    const r = await this.conntrack(["-C"]);
    return Number(r.stdout.trim());
  }

  /**
   * Reads (`value` undefined) or sets a sysctl inside the namespace, e.g.
   * `net.netfilter.nf_conntrack_acct`. Returns the value read back.
   */
  async sysctl(key: string, value?: string | number): Promise<string> {
    if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`bad sysctl key ${key}`);
    if (value !== undefined) {
      const w = await this.exec(["sysctl", "-q", "-w", `${key}=${value}`]);
      if (w.code !== 0) throw new Error(`sysctl -w ${key}=${value} in ${this.name}: ${w.stderr}`);
    }
    const r = await this.exec(["sysctl", "-n", key]);
    if (r.code !== 0) throw new Error(`sysctl ${key} in ${this.name}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /**
   * Starts a long-running command (e.g. the agent) inside the namespace.
   * `ip netns exec` execs it, so the child's pid is the command's own. The
   * caller reads its output and waits for it; a child still running when
   * {@linkcode withNetns} ends is killed (SIGKILL) before the namespace is
   * deleted.
   */
  spawn(cmd: string[], opts: Omit<Deno.CommandOptions, "args"> = {}): Deno.ChildProcess {
    this.#checkOpen();
    if (cmd.length === 0) throw new Error("spawn: empty command");
    const child = new Deno.Command("ip", { ...opts, args: ["netns", "exec", this.name, ...cmd] })
      .spawn();
    const entry = { child, done: false };
    this.#children.add(entry);
    child.status.then(() => {
      entry.done = true;
      this.#children.delete(entry);
    });
    return child;
  }

  /** Closes the netlink socket and kills leftover children; called by {@linkcode withNetns}. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#netlink?.close();
    this.#netlink = undefined;
    for (const e of [...this.#children]) {
      if (e.done) continue;
      try {
        e.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await e.child.status;
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`namespace ${this.name} was already removed`);
  }
}

let nameSeq = 0;

/**
 * Creates a namespace named `cct-PREFIX-PID-N`, brings its `lo` up, runs
 * `fn`, and deletes the namespace afterwards — also when `fn` throws, in
 * which case `fn`'s error is what rejects (a failed deletion is then only
 * logged). Children started with {@linkcode Netns.spawn} and still running
 * are killed first.
 */
export async function withNetns<T>(prefix: string, fn: (ns: Netns) => Promise<T>): Promise<T> {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, "-").slice(0, 24) || "ns";
  const name = `cct-${clean}-${Deno.pid}-${++nameSeq}`;
  const add = await run("ip", ["netns", "add", name]);
  if (add.code !== 0) throw new Error(`ip netns add ${name}: ${add.stderr.trim()}`);
  const ns = new Netns(name);
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    const up = await ns.exec(["ip", "link", "set", "lo", "up"]);
    if (up.code !== 0) throw new Error(`ip link set lo up in ${name}: ${up.stderr.trim()}`);
    outcome = { ok: true, value: await fn(ns) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  let cleanupError: string | undefined;
  try {
    await ns.close();
  } catch (e) {
    cleanupError = `closing ${name}: ${e instanceof Error ? e.message : e}`;
  }
  try {
    const del = await run("ip", ["netns", "del", name]);
    if (del.code !== 0) cleanupError ??= `ip netns del ${name}: ${del.stderr.trim()}`;
  } catch (e) {
    cleanupError ??= `ip netns del ${name}: ${e instanceof Error ? e.message : e}`;
  }
  if (!outcome.ok) {
    // The callback's own error is the one that matters; a cleanup failure is only logged.
    if (cleanupError !== undefined) console.error(cleanupError);
    throw outcome.error;
  }
  if (cleanupError !== undefined) throw new Error(cleanupError);
  return outcome.value;
}

/**
 * Deletes namespaces that {@linkcode withNetns} made in processes that no
 * longer run (a test run killed with SIGKILL cannot clean up). Namespaces of
 * live processes, and any not named `cct-…-PID-N`, are left alone. "Live"
 * is judged by `/proc/PID`, so run it only where test runs share one PID
 * namespace (as on a developer machine or CI runner).
 * Returns the names deleted.
 */
export async function sweepStaleNetns(): Promise<string[]> {
  const r = await run("ip", ["netns", "list"]);
  if (r.code !== 0) return [];
  const removed: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const name = line.split(" ")[0]!;
    const m = /^cct-[a-z0-9-]*?-(\d+)-\d+$/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === Deno.pid || (await exists(`/proc/${pid}`))) continue;
    if ((await run("ip", ["netns", "del", name])).code === 0) removed.push(name);
  }
  return removed;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

let probe: Promise<string | undefined> | undefined;

/**
 * Why kernel tests cannot run here, or `undefined` when they can: not Linux,
 * not root, no `ip`, no `conntrack`, a namespace cannot be made, its table
 * cannot be read or written, or the ctnetlink renewal does not work. Probed
 * once per process (and stale namespaces of dead test runs swept first).
 *
 * @example
 * ```ts
 * import { canRunKernelTests } from "./netns.ts";
 * const skip = await canRunKernelTests();
 * if (skip !== undefined) console.warn(`kernel tests skipped: ${skip}`);
 * ```
 */
export function canRunKernelTests(): Promise<string | undefined> {
  probe ??= probeKernel();
  return probe;
}

async function probeKernel(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.uid() !== 0) return `not root (uid ${Deno.uid()})`;
  for (
    const [cmd, args, what] of [
      ["ip", ["-V"], "ip (iproute2)"],
      ["conntrack", ["--version"], "conntrack (conntrack-tools)"],
    ] as const
  ) {
    try {
      const r = await run(cmd, [...args]);
      if (r.code !== 0) return `${what} does not run: ${r.stderr.trim()}`;
    } catch (e) {
      return `no ${what}: ${e instanceof Error ? e.message : e}`;
    }
  }
  await sweepStaleNetns();
  try {
    return await withNetns("probe", async (ns) => {
      const spec: EntrySpec = {
        src: "192.0.2.1",
        dst: "192.0.2.2",
        sport: 1,
        dport: 2,
        state: "SYN_SENT",
        timeout: 30,
        zone: 3,
      };
      await ns.insert(spec);
      if (!(await ns.list()).includes("zone=3")) {
        return "the namespace's table did not show the entry";
      }
      if (!(await ns.renew(spec, 60))) return "ctnetlink renewal found no entry";
      return undefined;
    });
  } catch (e) {
    return `namespace probe failed: ${e instanceof Error ? e.message : e}`;
  }
}

/** A running {@linkcode startRenewer}. */
export interface Renewer {
  /** Rounds completed. */
  readonly rounds: number;
  /** Renewals that found their entry, all rounds together. */
  readonly renewed: number;
  /** The specs whose entry was absent in the last completed round (e.g. the agent deleted it). */
  readonly absent: readonly EntrySpec[];
  /** Stops after the renewal in progress; rejects if a round failed. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startRenewer}. */
export interface RenewerOptions {
  /** Timeout each renewal sets; default each spec's own `timeout`. */
  timeoutSec?: number;
  /**
   * `netlink` (default): {@linkcode Netns.renew}. `conntrack`: `conntrack -U -t`
   * ({@linkcode Netns.renewWithConntrack}) for zone-0 entries, netlink for the
   * others (the CLI cannot renew in another zone).
   */
  via?: "netlink" | "conntrack";
}

/**
 * Renews every spec's entry every `everyMs` milliseconds (the first round
 * `everyMs` after the start), like a peer that keeps retransmitting SYNs,
 * until `stop()`. One ctnetlink request per tuple ({@linkcode Netns.renew}):
 * an absent entry is noted in `absent` and does not stop the others (a
 * `conntrack -R` batch would stop at the first failure). Rounds do not
 * overlap; a round longer than `everyMs` is followed by the next at once.
 * The event loop gets a turn every 500 renewals.
 */
// deno-lint-ignore require-await
export async function startRenewer(
  ns: Netns,
  specs: readonly EntrySpec[],
  everyMs: number,
  options: RenewerOptions = {},
): Promise<Renewer> {
  if (!(everyMs > 0)) throw new RangeError(`everyMs must be > 0, got ${everyMs}`);
  for (const s of specs) checkSpec(s);
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const state = { rounds: 0, renewed: 0, absent: [] as EntrySpec[] };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });
  const loop = (async () => {
    let next = performance.now() + everyMs;
    for (;;) {
      await sleep(Math.max(0, next - performance.now()));
      if (stopped) return;
      const absent: EntrySpec[] = [];
      for (let i = 0; i < specs.length; i++) {
        if (stopped) return;
        const spec = specs[i]!, t = options.timeoutSec ?? spec.timeout;
        const viaCli = options.via === "conntrack" && (spec.zone ?? 0) === 0;
        if (await (viaCli ? ns.renewWithConntrack(spec, t) : ns.renew(spec, t))) state.renewed++;
        else absent.push(spec);
        if (i % 500 === 499) await new Promise((r) => setTimeout(r, 0));
      }
      state.absent = absent;
      state.rounds++;
      next = Math.max(next + everyMs, performance.now());
    }
  })();
  // A failure is reported by stop(); keep it from being an unhandled rejection meanwhile.
  loop.catch(() => {});
  return {
    get rounds() {
      return state.rounds;
    },
    get renewed() {
      return state.renewed;
    },
    get absent() {
      return state.absent;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}

/**
 * The start-up checks that fail early and clearly: CAP_NET_ADMIN for
 * deleting, the table file readable, the conntrack binary answering; and
 * {@linkcode SetupError}, how a start-up step says it cannot go on.
 *
 * @module
 */
import type { ProcessRunner } from "../os/process.ts";

/** A setup step that cannot go on: exit code 1 with this message. */
export class SetupError extends Error {
  override name = "SetupError";
}

/** CAP_NET_ADMIN's bit number (linux/capability.h): conntrack deletes need it. */
export const CAP_NET_ADMIN = 12;

/**
 * Time one snapshot may take, retries included, for the sources that can
 * time out (netlink, the conntrack CLI); a procfs read is given the same
 * allowance in `Parts.sourceTimeoutMs` (lib/run/setup.ts).
 */
export const SOURCE_TIMEOUT_MS = 30_000;

/**
 * Every deleter (netlink, conntrack CLI) needs CAP_NET_ADMIN: without it the
 * agent would report ready and fail every delete. Throws a
 * {@linkcode SetupError} saying so; `caps` undefined (unknown) passes.
 */
export function checkNetAdmin(caps: bigint | undefined, deleteVia: string): void {
  if (caps === undefined || (caps >> BigInt(CAP_NET_ADMIN)) & 1n) return;
  throw new SetupError(
    `deleting conntrack entries needs CAP_NET_ADMIN, which this process does not have ` +
      `(CapEff ${
        caps.toString(16).padStart(16, "0")
      } in /proc/self/status; --delete-via=${deleteVia}): ` +
      `run it as root with NET_ADMIN (the DaemonSet and the systemd unit grant it), ` +
      `or pass --dry-run to only log what would be deleted`,
  );
}

/**
 * The effective capability set (`CapEff:` in /proc/self/status), or
 * `undefined` when it cannot be read.
 *
 * @example
 * ```ts
 * import { CAP_NET_ADMIN, effectiveCapabilities } from "./checks.ts";
 * const caps = effectiveCapabilities();
 * console.log(caps !== undefined && ((caps >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n);
 * ```
 */
export function effectiveCapabilities(statusFile = "/proc/self/status"): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(Deno.readTextFileSync(statusFile));
    return m ? BigInt("0x" + m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens and reads a byte of the table file, or explains why it cannot. Only
 * a regular file (procfs files are) is opened: a FIFO or a device could block
 * the whole process in open(2) or read(2).
 */
export async function checkReadable(path: string): Promise<void> {
  // Imported here, like the sources: an agent reading the table through netlink never
  // needs it.
  const { openTable } = await import("../sources/procfs.ts");
  try {
    // Opened without blocking and checked by its descriptor (see openTable).
    using f = openTable(path);
    f.readSync(new Uint8Array(1));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new SetupError(
        `the conntrack table ${path} does not exist: the kernel needs CONFIG_NF_CONNTRACK_PROCFS ` +
          `and the nf_conntrack module loaded (or choose another --source)`,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new SetupError(`cannot read ${path}: permission denied (it is root-only; run as root)`);
    }
    if (e instanceof TypeError) throw new SetupError(`--proc-file: ${e.message}`);
    throw new SetupError(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** How long `conntrack --version` may take at start-up. */
export const CHECK_TIMEOUT_MS = 5000;

/**
 * Runs `conntrack --version` (allowed `timeoutMs`, default
 * {@linkcode CHECK_TIMEOUT_MS}), or explains why it cannot.
 */
export async function checkConntrack(
  bin: string,
  runner: ProcessRunner,
  timeoutMs: number = CHECK_TIMEOUT_MS,
): Promise<string> {
  const r = await runner.run(bin, ["--version"], { timeoutMs });
  if (r.timedOut) {
    throw new SetupError(
      `the conntrack binary ${JSON.stringify(bin)} did not answer --version within ` +
        `${timeoutMs / 1000} s and was killed (with everything it started); ` +
        `point --conntrack-bin at conntrack-tools' conntrack`,
    );
  }
  if (r.spawnError !== undefined || r.code !== 0) {
    const why = r.spawnError ?? `exit code ${r.code}: ${r.stderr.trim()}`;
    throw new SetupError(
      `the conntrack binary ${JSON.stringify(bin)} cannot run (${why}); install conntrack-tools ` +
        `(Debian/Ubuntu: apt-get install conntrack; RHEL/Fedora: dnf install conntrack-tools) ` +
        `or point --conntrack-bin at it`,
    );
  }
  return (r.stdout + r.stderr).trim();
}

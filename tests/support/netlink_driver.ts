/**
 * Test driver for the netlink tests: runs inside a network namespace (as
 * `ip netns exec NS deno run -A tests/support/netlink_driver.ts '<json ops>'`, which
 * {@linkcode runDriver} does), does each operation with the real socket, and
 * prints one JSON array of results.
 *
 * Ops: `{op:"snapshot", filter?}`, `{op:"delete", tuples}`, `{op:"checkNetlink"}`,
 * `{op:"run", cmd:[...]}` (a command in the same namespace, e.g. conntrack),
 * `{op:"deleteCandidates"}` (delete what the last snapshot found).
 *
 * @module
 */
import type { Tuple } from "../../lib/model/tuple.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { checkNetlink } from "../../lib/netlink/capability.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import type { NetlinkFilterMode } from "../../lib/sources/netlink_filter.ts";
import { toTuple } from "../../lib/model/tuple.ts";
import type { Netns } from "../../testbed/netns.ts";

/** One driver operation. */
export type DriverOp =
  | { op: "snapshot"; filter?: NetlinkFilterMode }
  | { op: "delete"; tuples: Tuple[] }
  | { op: "checkNetlink" }
  | { op: "run"; cmd: string[] }
  | { op: "deleteCandidates" };

async function main(ops: DriverOp[]): Promise<unknown[]> {
  const results: unknown[] = [];
  let last: Tuple[] = [];
  for (const op of ops) {
    if (op.op === "snapshot") {
      const source = new NetlinkSource(op.filter === undefined ? {} : { filter: op.filter });
      try {
        const t0 = performance.now();
        const snap = await source.snapshot();
        const ms = performance.now() - t0;
        last = snap.candidates.map(toTuple);
        results.push({ ...snap, report: source.lastDump, filterMode: source.filterMode, ms });
      } catch (e) {
        results.push({ error: e instanceof Error ? e.message : String(e) });
      } finally {
        source.close();
      }
    } else if (op.op === "delete" || op.op === "deleteCandidates") {
      const deleter = new NetlinkDeleter();
      const t0 = performance.now();
      const outcomes = await deleter.delete(op.op === "delete" ? op.tuples : last);
      const ms = performance.now() - t0;
      deleter.close();
      results.push({ outcomes, ms });
    } else if (op.op === "checkNetlink") {
      results.push(await checkNetlink());
    } else if (op.op === "run") {
      const out = await new Deno.Command(op.cmd[0]!, { args: op.cmd.slice(1) }).output();
      results.push({
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      });
    }
  }
  return results;
}

/**
 * Runs the driver with `ops` inside `ns` (optionally under a prefix such as
 * `setpriv …`) and resolves with its results; rejects when it exits non-zero.
 */
export async function runDriver(
  ns: Netns,
  ops: DriverOp[],
  prefix: string[] = [],
): Promise<unknown[]> {
  const r = await ns.exec([
    ...prefix,
    Deno.execPath(),
    "run",
    "-A",
    import.meta.filename!,
    JSON.stringify(ops),
  ]);
  if (r.code !== 0) throw new Error(`driver in ${ns.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

if (import.meta.main) {
  const ops = JSON.parse(Deno.args[0] ?? "[]") as DriverOp[];
  console.log(JSON.stringify(await main(ops)));
}

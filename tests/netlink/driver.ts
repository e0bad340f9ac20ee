/**
 * Test driver for the netlink tests: runs inside a network namespace (as
 * `ip netns exec NS deno run -A tests/netlink/driver.ts '<json ops>'`), does
 * each operation with the real socket, and prints one JSON array of results.
 *
 * Ops: `{op:"snapshot", filter?}`, `{op:"delete", tuples}`, `{op:"probe"}`,
 * `{op:"run", cmd:[...]}` (a command in the same namespace, e.g. conntrack),
 * `{op:"fill", syn, other}` (bulk-create SYN_SENT and ESTABLISHED entries),
 * `{op:"deleteCandidates"}` (delete what the last snapshot found).
 *
 * @module
 */
import type { Tuple } from "../../lib/entry.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { type NetlinkFilterMode, NetlinkSource, probeNetlink } from "../../lib/sources/netlink.ts";
import {
  IPS_ASSURED,
  IPS_SEEN_REPLY,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_SYN_SENT,
} from "../../lib/netlink/codec.ts";
import { toTuple } from "../../lib/entry.ts";
import { type EntrySpec, fillTable } from "./fill.ts";

/** One driver operation. */
export type DriverOp =
  | { op: "snapshot"; filter?: NetlinkFilterMode }
  | { op: "delete"; tuples: Tuple[] }
  | { op: "probe" }
  | { op: "run"; cmd: string[] }
  | { op: "fill"; syn: number; other: number }
  | { op: "deleteCandidates" };

function* bulk(syn: number, other: number): Generator<EntrySpec> {
  for (let i = 0; i < syn + other; i++) {
    const src = `10.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`;
    const base = {
      family: "ipv4" as const,
      src,
      dst: "10.127.0.1",
      sport: 20000 + (i % 40000),
      zone: 0,
    };
    yield i < syn
      ? { ...base, dport: 80, tcpState: TCP_CONNTRACK_SYN_SENT, status: 0, timeout: 120 }
      : {
        ...base,
        dport: 443,
        tcpState: TCP_CONNTRACK_ESTABLISHED,
        status: IPS_SEEN_REPLY | IPS_ASSURED,
        timeout: 3600,
      };
  }
}

async function main(ops: DriverOp[]): Promise<unknown[]> {
  const results: unknown[] = [];
  let last: Tuple[] = [];
  for (const op of ops) {
    if (op.op === "snapshot") {
      const source = new NetlinkSource({ filter: op.filter });
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
    } else if (op.op === "fill") {
      results.push({ created: await fillTable(bulk(op.syn, op.other)) });
    } else if (op.op === "delete" || op.op === "deleteCandidates") {
      const deleter = new NetlinkDeleter();
      const t0 = performance.now();
      const outcomes = await deleter.delete(op.op === "delete" ? op.tuples : last);
      const ms = performance.now() - t0;
      deleter.close();
      results.push({ outcomes, ms });
    } else if (op.op === "probe") {
      results.push(await probeNetlink());
    } else if (op.op === "run") {
      const out = await new Deno.Command(op.cmd[0], { args: op.cmd.slice(1) }).output();
      results.push({
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      });
    }
  }
  return results;
}

if (import.meta.main) {
  const ops = JSON.parse(Deno.args[0] ?? "[]") as DriverOp[];
  console.log(JSON.stringify(await main(ops)));
}

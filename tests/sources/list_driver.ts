/**
 * Run inside a test's network namespace: snapshots the table once with each
 * source and prints, per source, the sorted keys of its candidates (JSON).
 *
 * @module
 */
import { tupleKey } from "../../lib/entry.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import type { Source } from "../../lib/sources/source.ts";

const out: Record<string, { keys: string[]; timeouts: number[] }> = {};
for (
  const source of [new ProcfsSource(), new NetlinkSource(), new ConntrackCliSource()] as Source[]
) {
  const snap = await source.snapshot();
  source.close?.();
  const sorted = [...snap.candidates].sort((a, b) => tupleKey(a) < tupleKey(b) ? -1 : 1);
  out[source.name] = { keys: sorted.map(tupleKey), timeouts: sorted.map((c) => c.timeout) };
}
console.log(JSON.stringify(out));

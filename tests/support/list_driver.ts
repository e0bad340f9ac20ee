/**
 * Run inside a test's network namespace: snapshots the table once with each
 * source and prints, per source, the sorted keys of its candidates (JSON).
 *
 * @module
 */
import { type Destination, type Endpoint, tupleKey } from "../../lib/tuple.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import type { Source } from "../../lib/sources/source.ts";
import type { EvidenceFinder } from "../../lib/unnated.ts";

/** Destinations to look evidence up for (JSON in EVIDENCE_FOR), if any. */
const evidenceFor: Destination[] = JSON.parse(Deno.env.get("EVIDENCE_FOR") ?? "[]");

const out: Record<string, {
  keys: string[];
  timeouts: number[];
  translated: (Endpoint | null)[];
  evidence: [string, Endpoint][];
  snapshotEvidence: [string, Endpoint][] | null;
}> = {};
const sources: (Source & EvidenceFinder)[] = [
  new ProcfsSource(),
  new NetlinkSource(),
  new ConntrackCliSource(),
];
for (const source of sources) {
  const snap = await source.snapshot();
  const evidence = evidenceFor.length > 0 ? await source.findEvidence(evidenceFor) : new Map();
  // Evidence asked of the snapshot itself: procfs and netlink answer, the CLI does not.
  const withEvidence = evidenceFor.length > 0
    ? await source.snapshot(undefined, { evidenceFor })
    : undefined;
  source.close?.();
  const sorted = [...snap.candidates].sort((a, b) => tupleKey(a) < tupleKey(b) ? -1 : 1);
  out[source.name] = {
    keys: sorted.map(tupleKey),
    timeouts: sorted.map((c) => c.timeout),
    translated: sorted.map((c) => c.translated ?? null),
    evidence: [...evidence].sort((a, b) => a[0] < b[0] ? -1 : 1),
    snapshotEvidence: withEvidence?.evidence === undefined
      ? null
      : [...withEvidence.evidence].sort((a, b) => a[0] < b[0] ? -1 : 1),
  };
}
console.log(JSON.stringify(out));

/**
 * Run inside a test's network namespace: snapshots the table once with each
 * source and prints, per source, the sorted keys of its candidates (JSON);
 * with EVIDENCE_FOR (JSON client keys), also the evidence a second snapshot
 * asked for them brought (ids left out: only netlink knows them).
 *
 * @module
 */
import { type ClientKey, type Endpoint, tupleKey } from "../../lib/model/tuple.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import type { Source } from "../../lib/sources/source.ts";

/** Keys to collect evidence for (JSON in EVIDENCE_FOR), if any. */
const evidenceFor: ClientKey[] = JSON.parse(Deno.env.get("EVIDENCE_FOR") ?? "[]");

type Listed = { sport: number; replyZone: number; translated: Endpoint; id: boolean };
const out: Record<string, {
  keys: string[];
  timeouts: number[];
  translated: (Endpoint | null)[];
  evidence: [string, Listed[]][] | null;
  overflow: string[];
}> = {};
const sources: Source[] = [new ProcfsSource(), new NetlinkSource(), new ConntrackCliSource()];
for (const source of sources) {
  const snap = await source.snapshot();
  const withEvidence = evidenceFor.length > 0
    ? await source.snapshot(undefined, { evidenceFor })
    : undefined;
  source.close?.();
  const sorted = [...snap.candidates].sort((a, b) => tupleKey(a) < tupleKey(b) ? -1 : 1);
  const ev = withEvidence?.evidence;
  out[source.name] = {
    keys: sorted.map(tupleKey),
    timeouts: sorted.map((c) => c.timeout),
    translated: sorted.map((c) => c.translated ?? null),
    evidence: ev === undefined ? null : [...ev.entries].sort((a, b) => a[0] < b[0] ? -1 : 1).map((
      [k, list],
    ) => [
      k,
      [...list].sort((a, b) => a.sport - b.sport).map((e) => ({
        sport: e.sport,
        replyZone: e.replyZone,
        translated: e.translated,
        id: e.id !== undefined,
      })),
    ]),
    overflow: ev === undefined ? [] : [...ev.overflow],
  };
}
console.log(JSON.stringify(out));

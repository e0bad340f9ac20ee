/**
 * The events source's evidence read: the translated entries heard for the
 * keys asked ({@linkcode EventEvidence}), each read again by GET, as an
 * `EvidenceRead` (lib/model/snapshot.ts). No I/O of its own: the GETs go
 * through the function given.
 *
 * @module
 */
import type { EvidenceRead } from "../model/snapshot.ts";
import { type ClientKey, clientKey, type ParsedTuple } from "../model/tuple.ts";
import { EvidenceBuilder } from "../model/evidence_builder.ts";
import type { GetAnswer } from "../netlink/get_batch.ts";
import { translation } from "../netlink/entry_candidate.ts";
import type { EventEvidence } from "./heard_translations.ts";

/**
 * Reads the evidence for `keys` from `heard`: the entries heard for each
 * key known in full, GET again now (`get`, one answer per tuple, in order);
 * gone or no longer translated ones are forgotten, the rest listed with
 * their reply zone and id. A key `heard` cannot vouch for in full is in
 * `overflow`. Rejects when a GET fails (then no evidence at all).
 *
 * @example
 * ```ts
 * import { readHeardEvidence } from "./heard_evidence.ts";
 * import { EventEvidence } from "./heard_translations.ts";
 * const key = { family: "ipv4" as const, src: "10.1.0.5", dst: "10.96.0.10", dport: 80, zone: 0 };
 * const read = await readHeardEvidence(new EventEvidence(), [key], () => Promise.resolve([]));
 * read.entries.get("ipv4 10.1.0.5 10.96.0.10 80 0"); // => []
 * ```
 */
export async function readHeardEvidence(
  heard: EventEvidence,
  keys: readonly ClientKey[],
  get: (tuples: ParsedTuple[]) => Promise<GetAnswer[]>,
): Promise<EvidenceRead> {
  const found = new EvidenceBuilder(keys);
  const { entries, unknown } = heard.lookup(keys);
  for (const key of unknown) found.unknown(key);
  if (entries.length === 0) return found.read();
  const answers = await get(entries.map((h) => h.tuple));
  entries.forEach((h, i) => {
    const a = answers[i]!;
    if (a.kind === "error") throw new Error(`reading evidence entries failed: ${a.error}`);
    const to = a.kind === "entry" ? translation(a.entry) : undefined;
    if (a.kind !== "entry" || to === undefined) {
      heard.remove(h);
      return;
    }
    const e = a.entry;
    found.add(clientKey(h.tuple), {
      sport: h.tuple.sport,
      replyZone: e.replyZone,
      translated: to,
      ...(e.id !== undefined ? { id: e.id } : {}),
    });
  });
  return found.read();
}

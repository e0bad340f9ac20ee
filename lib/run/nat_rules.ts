/**
 * The NAT-rules feed: the node's own nf_tables rules, read and evaluated
 * for the candidates the rules ask about (lib/nat/), shared by the agent's
 * decision step. Started with `--nat-rules=auto` (the default) and a rule
 * that can use it (`--unnated-after` not `off`); lib/nat/ loads only then,
 * and its sockets open at the first question, so an agent with no old
 * enough candidate reads nothing.
 *
 * @module
 */
import type { Feed } from "./parts.ts";
import type { NatVerdicts, NatVerdictStats } from "../nat/verdicts.ts";
import type { Registry } from "../serve/prom.ts";
import { canonicalIPv4, canonicalIPv6 } from "../model/addr.ts";

const PREFIX = "conntrack_cleaner_";

/**
 * This namespace's own addresses, re-read at most once a second: whether a
 * SYN's source is local decides which hooks are asked (lib/nat/hooks.ts).
 */
export function localAddresses(
  read: () => { address: string }[] = () => Deno.networkInterfaces(),
  now: () => number = () => performance.now(),
): (family: "ipv4" | "ipv6", address: string) => boolean {
  let at = -Infinity;
  let set = new Set<string>();
  return (family, address) => {
    if (now() - at >= 1000) {
      set = new Set();
      for (const i of read()) {
        const bare = i.address.split("%")[0]!;
        const c = canonicalIPv4(bare) ?? canonicalIPv6(bare);
        if (c !== undefined) set.add(c);
      }
      at = now();
    }
    return set.has(family === "ipv4" ? address : canonicalIPv6(address) ?? address);
  };
}

/** Reads and evaluates the node's NAT rules while the agent runs. */
export const NAT_RULES_FEED: Feed<NatVerdicts> = {
  name: "nat_rules",
  async start(c) {
    if (c.settings.natRules === "off" || c.settings.unnatedAfterMs === undefined) return undefined;
    const [{ NatVerdicts }, { SockDiagTable }, { NftRules }, { evaluate }] = await Promise.all([
      import("../nat/verdicts.ts"),
      import("../nat/sock_diag.ts"),
      import("../nat/nft_reader.ts"),
      import("../nat/evaluate.ts"),
    ]);
    const rules = new NftRules({ evaluate });
    const sockets = SockDiagTable.open();
    const verdicts = new NatVerdicts({
      sockets,
      isLocalAddress: localAddresses(),
      asker: { ask: (questions) => rules.answer(questions) },
    });
    return {
      value: verdicts,
      close: () => {
        rules.close();
        sockets.close();
        return Promise.resolve();
      },
    };
  },
  metrics: (r, read) => natRulesMetrics(r, () => read()?.stats),
};

/** The NAT rules' counters, folded in from the verdicts' stats at each scrape (0 while off). */
export function natRulesMetrics(r: Registry, stats: () => NatVerdictStats | undefined): void {
  const seen = { translated: 0, not_proven: 0, unreadable: 0, batches: 0, seconds: 0 };
  r.counter(
    `${PREFIX}nat_verdicts_total`,
    "What the node's NAT rules said of candidates' next SYN: translated, not_proven, unreadable.",
    ["verdict"],
    (c) => {
      const s = stats();
      for (const v of ["translated", "not_proven", "unreadable"] as const) {
        const n = s?.verdicts[v] ?? 0;
        if (n > seen[v]) c.inc({ verdict: v }, n - seen[v]);
        seen[v] = Math.max(n, seen[v]);
      }
    },
  );
  r.counter(
    `${PREFIX}nat_rules_reads_total`,
    "Polls that asked the node's NAT rules about some candidates.",
    [],
    (c) => {
      const n = stats()?.batches ?? 0;
      if (n > seen.batches) c.inc({}, n - seen.batches);
      seen.batches = Math.max(n, seen.batches);
    },
  );
  r.counter(
    `${PREFIX}nat_rules_read_seconds_total`,
    "Seconds spent reading and evaluating the node's NAT rules, all polls together.",
    [],
    (c) => {
      const n = stats()?.seconds ?? 0;
      if (n > seen.seconds) c.inc({}, n - seen.seconds);
      seen.seconds = Math.max(n, seen.seconds);
    },
  );
}

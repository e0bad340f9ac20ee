/**
 * Issue 7 end to end, with real TCP sockets and real DNAT rules in three
 * namespaces (see tests/support/stuck_client.ts): a client connects from a
 * fixed source port to a service address before the node has a rule for it,
 * the rule arrives 2 s later, and the client's retransmitted SYNs keep
 * matching the un-NATed SYN_SENT entry on the node.
 *
 * @module
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/kernel_test.ts";
import {
  ADDRESSES,
  type CtEntry,
  isTranslated,
  runStory,
  SERVICE_PORT,
  STUCK_SPORT,
  type StuckNet,
  withStuckNet,
} from "../support/stuck_client.ts";

/** The node's entry for the stuck client's tuple in `zone`, if any. */
function stuckEntry(table: CtEntry[], family: "ipv4" | "ipv6", zone: number) {
  const a = ADDRESSES[family];
  return table.find((e) =>
    e.proto === "tcp" && e.src === a.client && e.sport === STUCK_SPORT &&
    e.dst === a.service && e.dport === SERVICE_PORT && e.zone === zone
  );
}

async function withoutAgent(family: "ipv4" | "ipv6", net: StuckNet) {
  let first: CtEntry | undefined;
  const r = await runStory(net, {
    family,
    deadlineMs: 12_000,
    afterFirstSyn: async () => {
      await new Promise((r) => setTimeout(r, 300));
      first = stuckEntry(await net.table(), family, 0);
    },
  });
  const last = stuckEntry(await net.table(), family, 0);
  return { r, first, last };
}

kernelTest(
  "without the agent, a client retrying from a fixed port stays stuck behind its un-NATed SYN_SENT entry for 12 s while a client at 3 s connects at once (IPv4, IPv6)",
  async () => {
    const results = await Promise.all(
      (["ipv4", "ipv6"] as const).map((family) =>
        withStuckNet(`u7-none-${family.slice(-1)}`, { zone: 0 }, async (net) => ({
          family,
          accepted: net.accepted,
          ...await withoutAgent(family, net),
        }))
      ),
    );
    for (const { family, r, first, last, accepted } of results) {
      const a = ADDRESSES[family];
      const ctx = `${family}: ${JSON.stringify({ r, first, last, accepted })}`;
      console.log(
        `${family} without the agent: stuck client ${r.stuck.outcome} after ${r.stuck.ms} ms; ` +
          `second client connected in ${r.second?.ms} ms`,
      );
      assert.equal(r.stuck.outcome, "deadline", `the stuck client must not connect: ${ctx}`);
      assert.ok(r.stuck.ms >= 12_000, ctx);
      assert.ok(r.second?.connected && r.second.ms < 1000, `the second client connects: ${ctx}`);
      assert.ok(r.dnatMs >= 2000 && r.dnatMs < 2500, ctx);
      // The first SYN made an un-NATed SYN_SENT entry, and it is the same
      // entry (id) 12 s later: retransmissions matched it and did not renew it.
      assert.ok(first && first.state === "SYN_SENT" && first.unreplied, ctx);
      assert.ok(!isTranslated(first), ctx);
      assert.ok(
        last && last.id === first.id && last.state === "SYN_SENT" && !isTranslated(last),
        ctx,
      );
      assert.ok(last.timeout <= 120 - 11, `not renewed by the retransmissions: ${ctx}`);
      // The backend only ever saw the second client, through the DNAT rule.
      assert.equal(accepted.length, 1, ctx);
      assert.equal(accepted[0][0], a.client, ctx);
      assert.notEqual(accepted[0][1], STUCK_SPORT, ctx);
    }
  },
);

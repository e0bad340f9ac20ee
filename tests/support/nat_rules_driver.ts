/**
 * Run inside a test's network namespace: judges one tuple (JSON in
 * `TUPLE`) against the namespace's NAT rules the way the agent's feed does
 * (lib/run/nat_rules.ts: `NatVerdicts` over `NftRules` and the socket
 * table), and prints the verdict as JSON.
 *
 * @module
 */
import { NAT_RULES_FEED } from "../../lib/run/nat_rules.ts";
import { createLogger } from "../../lib/log/logger.ts";
import type { Settings } from "../../lib/run/settings.ts";

const stop = new AbortController();
const running = await NAT_RULES_FEED.start({
  settings: { natRules: "auto", unnatedAfterMs: 2000 } as Settings,
  log: createLogger({ level: "error", write: () => {} }),
  stop: stop.signal,
  use: () => Promise.resolve(undefined),
});
if (running === undefined) throw new Error("the NAT-rules feed did not start");
const [v] = await running.value.judge([JSON.parse(Deno.env.get("TUPLE")!)]);
await running.close();
console.log(JSON.stringify(v?.kind === "translated" ? { kind: v.kind, hooks: v.hooks } : v));

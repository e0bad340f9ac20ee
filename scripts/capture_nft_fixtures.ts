/**
 * Captures real nf_tables replies as fixtures for the reader's unit tests.
 *
 *     deno run -A scripts/capture_nft_fixtures.ts [outfile]
 *
 * Needs root, `nft` and `iptables` (nf_tables backend). Makes a network
 * namespace, loads the rule sets of testbed/nft_rulesets.ts (native
 * nftables with `nft -f -`, kube-proxy-shaped iptables-nft with
 * `iptables-restore`), runs testbed/nft_driver.ts inside it recording every
 * request and every datagram the kernel answered, saves them with
 * `nft --debug=netlink list ruleset` (an independent record of each
 * expression and its registers) and the tool versions, and removes the
 * namespace. Default outfile: tests/fixtures/nft/rulesets.json.
 *
 * @module
 */
import { withNetns } from "../testbed/netns.ts";
import { runNftDriver } from "../testbed/nft_driver.ts";
import { IPTABLES_RULESET, NFT_INET_RULESET, NFT_RULESET } from "../testbed/nft_rulesets.ts";

const out = Deno.args[0] ??
  new URL("../tests/fixtures/nft/rulesets.json", import.meta.url).pathname;

await withNetns("nft-capture", async (ns) => {
  const must = async (cmd: string[], stdin?: string) => {
    const r = await ns.exec(cmd, stdin === undefined ? {} : { stdin });
    if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await must(["nft", "-f", "-"], NFT_RULESET);
  await must(["nft", "-f", "-"], NFT_INET_RULESET);
  await must(["iptables-restore"], IPTABLES_RULESET);
  const result = await runNftDriver(ns, { hooks: ["prerouting", "output"], record: true });
  if (result.error !== undefined) throw new Error(`driver: ${result.error}`);
  const debug = await must(["nft", "--debug=netlink", "list", "ruleset"]);
  const fixture = {
    kernel: Deno.osRelease(),
    nft: (await must(["nft", "--version"])).trim(),
    iptables: (await must(["iptables", "--version"])).trim(),
    hooks: ["prerouting", "output"],
    debugNetlink: debug,
    exchanges: result.exchanges,
  };
  await Deno.mkdir(new URL(".", `file://${out}`).pathname, { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(fixture, null, 1) + "\n");
  console.log(`wrote ${out}: ${result.exchanges?.length} exchanges`);
});

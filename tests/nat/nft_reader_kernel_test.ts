/**
 * The nf_tables decoder against the running kernel: rule sets loaded with
 * `nft -f -` and `iptables-restore` (iptables-nft) in a namespace of their
 * own (always removed), read back by testbed/nft_driver.ts inside it, and
 * every rule compared with `nft --debug=netlink list ruleset` there.
 * Registered with `kernelTest`: skipped with the reason where kernel tests
 * cannot run, a failure where CI requires them.
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { compareWithDebug } from "../support/nft_debug.ts";
import { type Netns, withNetns } from "../../testbed/netns.ts";
import { runNftDriver } from "../../testbed/nft_driver.ts";
import { IPTABLES_RULESET, NFT_INET_RULESET, NFT_RULESET } from "../../testbed/nft_rulesets.ts";

/** More expression kinds than the fixtures: state set before nat, packet-path state, other ones. */
const NFT_MORE = `table ip6 more {
  set seen { type ipv6_addr; flags dynamic, timeout; timeout 1m; }
  chain raw {
    type filter hook prerouting priority raw; policy accept;
    ip6 saddr fd00::/64 ct zone set 5
    tcp dport 9 notrack
    update @seen { ip6 saddr }
  }
  chain mangle {
    type filter hook output priority mangle; policy accept;
    meta skuid 1000 meta mark set meta mark | 0x4
    ip6 dscp set cs1
  }
  chain nat {
    type nat hook output priority -100; policy accept;
    ip6 saddr @seen accept
    fib daddr type local tcp dport 80 redirect to :8080
    numgen inc mod 3 0 tcp dport 81 dnat to [fd00::1]:80
    symhash mod 2 1 tcp dport 82 dnat to [fd00::2]
    limit rate 1/second accept
    quota over 10 mbytes accept
    tcp dport != 1-1000 accept
    ct mark 0x2 ct direction original accept
    meta mark & 0x4 == 0x4 tcp dport 83-85 dnat to [fd00::3]-[fd00::5]:1000-1002
  }
}
`;

async function load(ns: Netns, cmd: string[], text: string): Promise<void> {
  const r = await ns.exec(cmd, { stdin: text });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
}

async function debugText(ns: Netns): Promise<string> {
  const r = await ns.exec(["nft", "--debug=netlink", "list", "ruleset"]);
  if (r.code !== 0) throw new Error(`nft --debug=netlink: ${r.stderr}`);
  return r.stdout;
}

const needs = ["nft", "iptables-restore"];

kernelTest(
  "NftFetcher: native nftables and iptables-nft rules decode as nft --debug=netlink shows them",
  async () => {
    await withNetns("nft-read", async (ns) => {
      await load(ns, ["nft", "-f", "-"], NFT_RULESET);
      await load(ns, ["nft", "-f", "-"], NFT_INET_RULESET);
      await load(ns, ["iptables-restore"], IPTABLES_RULESET);
      const read = await runNftDriver(ns, { hooks: ["prerouting", "output"] });
      assert.equal(read.error, undefined);
      assert.equal(read.generation, read.generationAfter);
      assert.ok(read.chains.length >= 15, `${read.chains.length} chains`);
      // The driver prints bytes as hex; the comparison wants bytes back.
      const chains = JSON.parse(
        JSON.stringify(read.chains),
        (k, v) =>
          typeof v === "string" && /^(data|mask|xor|from|to|info)$/.test(k)
            ? Uint8Array.from(v.match(/../g) ?? [], (h: string) => parseInt(h, 16))
            : v,
      );
      assert.deepEqual(compareWithDebug(chains, await debugText(ns)), []);
      const sips = read.sets.find((s) => s.name === "sips");
      assert.deepEqual(sips?.elements.map((e) => [e.key, e.keyEnd]), [
        ["0a000000", "0affffff"],
        ["ac100005", "ac100005"],
        ["c0a80101", "c0a80109"],
      ]);
    });
  },
  { needs },
);

kernelTest(
  "NftFetcher: marks, zones, dynamic sets, fib, numgen inc, symhash, limit, quota decode as nft shows them",
  async () => {
    await withNetns("nft-more", async (ns) => {
      await load(ns, ["nft", "-f", "-"], NFT_MORE);
      const read = await runNftDriver(ns, { hooks: ["prerouting", "output"] });
      assert.equal(read.error, undefined);
      const chains = JSON.parse(
        JSON.stringify(read.chains),
        (k, v) =>
          typeof v === "string" && /^(data|mask|xor|from|to|info)$/.test(k)
            ? Uint8Array.from(v.match(/../g) ?? [], (h: string) => parseInt(h, 16))
            : v,
      );
      assert.deepEqual(compareWithDebug(chains, await debugText(ns)), []);
      const seen = read.sets.find((s) => s.name === "seen");
      assert.equal(seen?.flags.dynamic, true);
      const ops = read.chains.flatMap((c) =>
        c.rules.flatMap((r) => r.exprs.map((e) => e.op === "other" ? e.name : e.op))
      );
      for (
        const op of [
          "ct_set",
          "meta_set",
          "payload_set",
          "dynset",
          "notrack",
          "fib",
          "numgen",
          "hash",
          "limit",
          "quota",
          "nat",
          "redir",
          "range",
        ]
      ) {
        assert.ok(ops.includes(op), `${op} in ${[...new Set(ops)]}`);
      }
    });
  },
  { needs: ["nft"] },
);

kernelTest(
  "NftFetcher: the generation id moves with every rule change, nft and iptables-nft alike",
  async () => {
    await withNetns("nft-gen", async (ns) => {
      await load(ns, ["nft", "-f", "-"], NFT_RULESET);
      const a = await runNftDriver(ns, { hooks: ["prerouting"] });
      await load(ns, ["nft", "-f", "-"], "add rule ip kp ep1 counter\n");
      const b = await runNftDriver(ns, { hooks: ["prerouting"] });
      await load(ns, ["iptables-restore", "--noflush"], "*nat\n-A PREROUTING -j RETURN\nCOMMIT\n");
      const c = await runNftDriver(ns, { hooks: ["prerouting"] });
      assert.ok(
        a.generation < b.generation && b.generation < c.generation,
        `${a.generation} ${b.generation} ${c.generation}`,
      );
      const ep1 = b.chains.find((x) => x.name === "ep1");
      assert.equal(ep1?.rules.at(-1)?.exprs.at(-1)?.op, "counter");
    });
  },
  { needs },
);

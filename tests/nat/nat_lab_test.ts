/**
 * The NAT lab's pure parts (no kernel): the generator's determinism and
 * coverage, the renderers' text, the SYN packets' checksums, and how the
 * differential test judges an answer.
 */
import assert from "node:assert/strict";
import type { NatAnswer } from "../../lib/nat/ruleset.ts";
import { inTargets, judge, kernelTranslated } from "../../testbed/nat_lab/differential.ts";
import { generateCase } from "../../testbed/nat_lab/generate.ts";
import type { Observation, Probe } from "../../testbed/nat_lab/lab.ts";
import type { RuleSet } from "../../testbed/nat_lab/model.ts";
import { synPacket } from "../../testbed/nat_lab/raw_syn.ts";
import { renderIptables } from "../../testbed/nat_lab/render_iptables.ts";
import { renderNft } from "../../testbed/nat_lab/render_nft.ts";

const seeds = Array.from({ length: 500 }, (_, i) => i + 1);

Deno.test("generateCase gives the same case for the same seed and different ones for others", () => {
  assert.deepEqual(generateCase(42), generateCase(42));
  const texts = new Set(seeds.slice(0, 100).map((s) => JSON.stringify(generateCase(s).load)));
  assert.ok(texts.size >= 99, `only ${texts.size} distinct rule sets in 100 seeds`);
});

Deno.test("generateCase over 500 seeds covers every match, action, style, tie and probe kind", () => {
  const seen = new Set<string>();
  for (const s of seeds) {
    const c = generateCase(s);
    const sports = c.probes.map((p) => `${p.src.includes(":")}/${p.sport}`);
    assert.equal(new Set(sports).size, sports.length, `seed ${s}: source ports repeat`);
    seen.add(`style:${c.ruleSets.map((r) => r.style).join("+")}`);
    const natPrio = new Map<string, number>();
    for (const rs of c.ruleSets) {
      for (const t of rs.tables) {
        if (t.dynSet) seen.add("dynSet");
        for (const ch of t.chains) {
          if (ch.base?.type === "filter") seen.add(`pre:${ch.base.priority}`);
          if (ch.base?.type === "nat") {
            const k = ch.base.hook;
            if (natPrio.get(k) === ch.base.priority) seen.add("tie");
            natPrio.set(k, ch.base.priority);
          }
          for (const r of ch.rules) {
            seen.add(`${rs.style}:action:${r.action.kind}`);
            if (r.action.kind === "dnat") {
              if (r.action.to.port === undefined) seen.add("dnat:no-port");
              if (r.action.to.addr?.[0] !== r.action.to.addr?.[1]) seen.add("dnat:addr-range");
            }
            for (const m of r.matches) {
              seen.add(`${rs.style}:match:${m.kind}${"neg" in m && m.neg ? ":neg" : ""}`);
            }
          }
        }
      }
    }
    for (const p of c.probes) {
      seen.add(`probe:${p.hook}:${p.src.includes(":") ? 6 : 4}${p.uid ? ":uid" : ""}`);
    }
  }
  const want = [
    "style:nft",
    "style:iptables",
    "style:iptables+nft",
    "dynSet",
    "pre:-150",
    "pre:-300",
    "tie",
    "dnat:no-port",
    "dnat:addr-range",
    ...["dnat", "redirect", "jump", "goto", "return", "accept", "setMark"].flatMap((a) => [
      `nft:action:${a}`,
      `iptables:action:${a}`,
    ]),
    ...["drop", "notrack"].flatMap((a) => [`nft:action:${a}`, `iptables:action:${a}`]),
    ...["updateDynSet", "dnatMap", "vmap", "numgenVmap", "numgenDnat"].map((a) =>
      `nft:action:${a}`
    ),
    ...["daddr", "saddr", "dport", "mark", "uid"].flatMap((m) => [
      `nft:match:${m}`,
      `nft:match:${m}:neg`,
      `iptables:match:${m}`,
      `iptables:match:${m}:neg`,
    ]),
    "nft:match:random",
    "nft:match:nth",
    "iptables:match:random",
    "iptables:match:nth",
    "nft:match:inDynSet",
    "nft:match:inDynSet:neg",
    "probe:prerouting:4",
    "probe:prerouting:6",
    "probe:output:4",
    "probe:output:6",
    "probe:output:4:uid",
  ];
  assert.deepEqual(want.filter((w) => !seen.has(w)), []);
});

const sample: RuleSet = {
  style: "nft",
  tables: [{
    family: "inet",
    name: "t",
    dynSet: false,
    chains: [{
      name: "pre",
      base: { hook: "prerouting", type: "nat", priority: -100 },
      rules: [
        {
          ip: 4,
          matches: [{ kind: "daddr", neg: true, values: ["203.0.113.10", "203.0.113.0/28"] }],
          action: { kind: "dnat", to: { addr: ["192.0.2.1", "192.0.2.3"], port: [8000, 8002] } },
        },
        {
          matches: [{ kind: "dport", neg: false, values: [[8000, 8100]] }],
          action: { kind: "redirect", port: [9000, 9000] },
        },
        {
          ip: 6,
          matches: [],
          action: {
            kind: "dnat",
            to: { addr: ["2001:db8:2::1", "2001:db8:2::1"], port: [80, 80] },
          },
        },
      ],
    }],
  }],
};

Deno.test("renderNft writes negated sets, inet NAT families and the protocol a port needs", () => {
  assert.equal(
    renderNft(sample),
    `table inet t {
  chain pre {
    type nat hook prerouting priority -100; policy accept;
    ip daddr != { 203.0.113.10, 203.0.113.0/28 } meta l4proto tcp dnat ip to 192.0.2.1-192.0.2.3:8000-8002
    tcp dport 8000-8100 redirect to :9000
    meta l4proto tcp dnat ip6 to [2001:db8:2::1]:80
  }
}
`,
  );
});

Deno.test("renderIptables writes -p tcp, negations, ranges and gotos as iptables-restore reads them", () => {
  const rs: RuleSet = {
    style: "iptables",
    tables: [{
      family: "ip",
      name: "nat",
      dynSet: false,
      chains: [
        {
          name: "OUTPUT",
          base: { hook: "output", type: "nat", priority: -100 },
          rules: [
            {
              matches: [{ kind: "uid", neg: true, value: 1000 }, {
                kind: "dport",
                neg: true,
                values: [80, [8000, 8100]],
              }],
              action: { kind: "goto", chain: "C1" },
            },
          ],
        },
        {
          name: "C1",
          rules: [{
            ip: 4,
            matches: [{ kind: "daddr", neg: true, values: ["203.0.113.8/30"] }, { kind: "random" }],
            action: { kind: "dnat", to: { addr: ["192.0.2.1", "192.0.2.1"], port: [8080, 8080] } },
          }],
        },
      ],
    }],
  };
  assert.deepEqual(renderIptables(rs), {
    v4: `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:C1 - [0:0]
-A OUTPUT -p tcp -m owner ! --uid-owner 1000 -m multiport ! --dports 80,8000:8100 -g C1
-A C1 -p tcp ! -d 203.0.113.8/30 -m statistic --mode random --probability 0.5 -j DNAT --to-destination 192.0.2.1:8080
COMMIT
`,
  });
});

function checksumOk(words: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i + 1 < words.length; i += 2) sum += (words[i]! << 8) | words[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

Deno.test("synPacket builds an IPv4 and an IPv6 SYN with valid header and TCP checksums", () => {
  const v4 = synPacket({
    src: new Uint8Array([198, 51, 100, 1]),
    dst: new Uint8Array([203, 0, 113, 10]),
    sport: 40000,
    dport: 80,
  }, 7);
  assert.equal(v4.length, 40);
  assert.ok(checksumOk(v4.subarray(0, 20)), "IPv4 header checksum");
  const pseudo4 = new Uint8Array([...v4.subarray(12, 20), 0, 6, 0, 20, ...v4.subarray(20)]);
  assert.ok(checksumOk(pseudo4), "TCP checksum over the IPv4 pseudo header");
  assert.equal(v4[33], 0x02, "SYN only");
  assert.equal((v4[20]! << 8) | v4[21]!, 40000);

  const a6 = new Uint8Array(16), b6 = new Uint8Array(16);
  a6.set([0x20, 0x01, 0x0d, 0xb8]);
  b6.set([0x20, 0x01, 0x0d, 0xb8, 0, 1]);
  a6[15] = 1;
  b6[15] = 0x10;
  const v6 = synPacket({ src: a6, dst: b6, sport: 40001, dport: 443 }, 8);
  assert.equal(v6.length, 60);
  const pseudo6 = new Uint8Array([...a6, ...b6, 0, 0, 0, 20, 0, 0, 0, 6, ...v6.subarray(40)]);
  assert.ok(checksumOk(pseudo6), "TCP checksum over the IPv6 pseudo header");
});

const probe: Probe = {
  hook: "prerouting",
  src: "198.51.100.1",
  dst: "203.0.113.10",
  sport: 1,
  dport: 80,
};
const v4 = (s: string) => new Uint8Array(s.split(".").map(Number));
const T: NatAnswer = {
  kind: "translated",
  targets: [{ addrMin: v4("192.0.2.1"), addrMax: v4("192.0.2.3"), portMin: 8080, portMax: 8080 }],
};
const to = (addr: string, port: number, dnat = true): Observation => ({
  kind: "entry",
  dnat,
  addr,
  port,
});

Deno.test("judge accepts translated-to-T only where the kernel translated into T", () => {
  assert.deepEqual(judge(probe, T, to("192.0.2.2", 8080)), { kind: "agree" });
  assert.equal(judge(probe, T, to("192.0.2.4", 8080)).kind, "disagree");
  assert.equal(judge(probe, T, to("192.0.2.2", 8081)).kind, "disagree");
  assert.equal(judge(probe, T, to("203.0.113.10", 80, false)).kind, "disagree");
  assert.equal(judge(probe, T, { kind: "none" }).kind, "disagree");
  assert.equal(judge(probe, T, { kind: "refused" }).kind, "disagree");
});

Deno.test("judge rejects a T that holds the original destination, and a `need` answer", () => {
  const identity: NatAnswer = {
    kind: "translated",
    targets: [{
      addrMin: v4("203.0.113.10"),
      addrMax: v4("203.0.113.10"),
      portMin: 80,
      portMax: 80,
    }],
  };
  assert.match(
    (judge(probe, identity, to("203.0.113.10", 80, true)) as { why: string }).why,
    /original destination/,
  );
  assert.equal(
    judge(probe, { kind: "need", chains: [], sets: [] }, to("1.2.3.4", 1)).kind,
    "disagree",
  );
});

Deno.test("judge allows not proven always and says whether the kernel translated (identity DNAT is not)", () => {
  const np: NatAnswer = { kind: "not_proven", reason: "x" };
  assert.deepEqual(judge(probe, np, to("192.0.2.9", 1)), {
    kind: "not_proven",
    kernelTranslated: true,
  });
  assert.deepEqual(judge(probe, np, to("203.0.113.10", 80, true)), {
    kind: "not_proven",
    kernelTranslated: false,
  });
  assert.deepEqual(judge(probe, np, { kind: "none" }), {
    kind: "not_proven",
    kernelTranslated: false,
  });
  assert.equal(kernelTranslated(probe, to("203.0.113.10", 81, true)), true);
  assert.equal(inTargets(T.kind === "translated" ? T.targets : [], "192.0.2.3", 8080), true);
  assert.equal(inTargets(T.kind === "translated" ? T.targets : [], "192.0.2.3", 8079), false);
});

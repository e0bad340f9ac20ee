/**
 * The NAT lab itself (`testbed/nat_lab/`) against the real kernel: a
 * hand-written rule set, SYNs from the client (PREROUTING) and from the node
 * (OUTPUT), and the translation conntrack recorded for each, exactly as
 * expected. This is what makes the differential test's kernel side
 * trustworthy.
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { type Observation, type Probe, withNatLab } from "../../testbed/nat_lab/lab.ts";
import { generateCase } from "../../testbed/nat_lab/generate.ts";
import { libnftablesProblem } from "../../testbed/nat_lab/nft_run.ts";

const NFT = `table ip t {
  chain p {
    type nat hook prerouting priority -100; policy accept;
    ip daddr 203.0.113.10 tcp dport 80 dnat to 192.0.2.7:8080
    ip daddr 203.0.113.11 meta l4proto tcp redirect to :9000
    ip daddr 203.0.113.12 dnat to 203.0.113.1
  }
  chain o {
    type nat hook output priority -100; policy accept;
    ip daddr 203.0.113.10 tcp dport 80 dnat to 192.0.2.8:8081
    ip daddr 203.0.113.11 meta l4proto tcp redirect to :9001
    meta skuid 1000 ip daddr 203.0.113.13 dnat to 192.0.2.9
  }
}
table ip6 t6 {
  chain p {
    type nat hook prerouting priority -100; policy accept;
    ip6 daddr 2001:db8:1::10 meta l4proto tcp dnat to [2001:db8:2::7]:8080
  }
}
table ip r {
  chain p {
    type filter hook prerouting priority -300; policy accept;
    ip daddr 203.0.113.14 drop
  }
  chain o {
    type filter hook output priority -300; policy accept;
    ip daddr 203.0.113.14 drop
  }
}
`;

const IPTABLES = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SVC - [0:0]
-A PREROUTING -d 203.0.113.20/32 -p tcp -j SVC
-A OUTPUT -d 203.0.113.20/32 -p tcp -m owner ! --uid-owner 1000 -j SVC
-A SVC -p tcp --dport 443 -j DNAT --to-destination 192.0.2.30:8443
-A SVC -p tcp -j REDIRECT --to-ports 7000
COMMIT
`;

const entry = (addr: string, port: number, dnat = true): Observation => ({
  kind: "entry",
  dnat,
  addr,
  port,
});

kernelTest(
  "NatLab.probe reads the kernel's translation of SYNs from the client (PREROUTING) and the node (OUTPUT)",
  () =>
    withNatLab(async (lab) => {
      await lab.load({ nft: NFT });
      const cases: [Probe, Observation][] = [
        [
          { hook: "prerouting", src: "198.51.100.1", dst: "203.0.113.10", sport: 40000, dport: 80 },
          entry("192.0.2.7", 8080),
        ],
        [
          { hook: "prerouting", src: "198.51.100.1", dst: "203.0.113.10", sport: 40001, dport: 81 },
          entry("203.0.113.10", 81, false),
        ],
        // REDIRECT in PREROUTING: the input interface's primary address.
        [
          {
            hook: "prerouting",
            src: "198.51.100.10",
            dst: "203.0.113.11",
            sport: 40002,
            dport: 81,
          },
          entry("198.51.100.2", 9000),
        ],
        // DNAT without a port keeps it; to a local address: the entry is seen although a RST kills it.
        [
          {
            hook: "prerouting",
            src: "198.51.100.10",
            dst: "203.0.113.12",
            sport: 40003,
            dport: 81,
          },
          entry("203.0.113.1", 81),
        ],
        [
          {
            hook: "prerouting",
            src: "198.51.100.10",
            dst: "203.0.113.14",
            sport: 40004,
            dport: 81,
          },
          { kind: "none" },
        ],
        [
          {
            hook: "prerouting",
            src: "2001:db8::1",
            dst: "2001:db8:1::10",
            sport: 40005,
            dport: 81,
          },
          entry("2001:db8:2::7", 8080),
        ],
        [
          { hook: "output", src: "198.51.100.2", dst: "203.0.113.10", sport: 40010, dport: 80 },
          entry("192.0.2.8", 8081),
        ],
        // REDIRECT in OUTPUT: loopback.
        [
          { hook: "output", src: "198.51.100.2", dst: "203.0.113.11", sport: 40011, dport: 80 },
          entry("127.0.0.1", 9001),
        ],
        [{
          hook: "output",
          src: "198.51.100.2",
          dst: "203.0.113.13",
          sport: 40012,
          dport: 80,
          uid: 1000,
        }, entry("192.0.2.9", 80)],
        [
          { hook: "output", src: "198.51.100.2", dst: "203.0.113.13", sport: 40013, dport: 80 },
          entry("203.0.113.13", 80, false),
        ],
        [{ hook: "output", src: "198.51.100.2", dst: "203.0.113.14", sport: 40014, dport: 80 }, {
          kind: "refused",
        }],
        [
          { hook: "output", src: "198.51.100.2", dst: "203.0.113.1", sport: 40015, dport: 80 },
          entry("203.0.113.1", 80, false),
        ],
      ];
      const seen = await lab.probe(cases.map(([p]) => p));
      cases.forEach(([p, want], i) => assert.deepEqual(seen[i], want, JSON.stringify(p)));
      // The forwarded one is still in the table (nobody answered it).
      const kept = (await lab.entries()).find((e) => e.sport === 40000);
      assert.equal(kept?.replySport, 8080);

      // iptables-nft shapes, and a second rule set in the same namespaces.
      await lab.load({ iptables: IPTABLES });
      const again: [Probe, Observation][] = [
        [{
          hook: "prerouting",
          src: "198.51.100.11",
          dst: "203.0.113.20",
          sport: 41000,
          dport: 443,
        }, entry("192.0.2.30", 8443)],
        [
          {
            hook: "prerouting",
            src: "198.51.100.11",
            dst: "203.0.113.20",
            sport: 41001,
            dport: 80,
          },
          entry("198.51.100.2", 7000),
        ],
        [
          {
            hook: "prerouting",
            src: "198.51.100.11",
            dst: "203.0.113.10",
            sport: 41002,
            dport: 80,
          },
          entry("203.0.113.10", 80, false),
        ],
        [
          { hook: "output", src: "198.51.100.2", dst: "203.0.113.20", sport: 41010, dport: 443 },
          entry("192.0.2.30", 8443),
        ],
        [{
          hook: "output",
          src: "198.51.100.2",
          dst: "203.0.113.20",
          sport: 41011,
          dport: 443,
          uid: 1000,
        }, entry("203.0.113.20", 443, false)],
      ];
      const seen2 = await lab.probe(again.map(([p]) => p));
      again.forEach(([p, want], i) => assert.deepEqual(seen2[i], want, JSON.stringify(p)));
    }),
  { needs: ["nft", "iptables-nft-restore"], skip: libnftablesProblem() },
);

kernelTest(
  "NatLab.probe finds an entry for every SYN of 150 generated rule sets that drop nothing (no event lost, both families tracked)",
  () =>
    withNatLab(async (lab) => {
      let checked = 0;
      for (let seed = 1; seed <= 150; seed++) {
        const c = generateCase(seed);
        const drops = c.ruleSets.some((rs) =>
          rs.tables.some((t) =>
            t.chains.some((ch) => ch.rules.some((r) => ["drop", "notrack"].includes(r.action.kind)))
          )
        );
        if (drops) continue;
        await lab.load(c.load);
        const seen = await lab.probe(c.probes);
        seen.forEach((o, i) =>
          assert.equal(o.kind, "entry", `seed ${seed}: ${JSON.stringify(c.probes[i])}`)
        );
        checked++;
      }
      assert.ok(checked > 80, `only ${checked} rule sets without drops`);
    }),
  { needs: ["iptables-nft-restore", "ip6tables-nft-restore"], skip: libnftablesProblem() },
);

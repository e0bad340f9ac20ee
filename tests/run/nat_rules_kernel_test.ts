import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { withNetns } from "../../testbed/netns.ts";

const DRIVER = new URL("../support/nat_rules_driver.ts", import.meta.url).pathname;
const TUPLE = {
  family: "ipv4",
  src: "192.0.2.7",
  dst: "198.51.100.80",
  sport: 40000,
  dport: 80,
  zone: 0,
};

kernelTest(
  "NAT_RULES_FEED reads the node's rules with CAP_NET_ADMIN alone (the DaemonSet's and the unit's only capability), and finds them unreadable without it",
  async () => {
    await withNetns("natcaps", async (ns) => {
      const load = await ns.exec(["nft", "-f", "-"], {
        stdin: "table ip nat {\n" +
          "  chain pre {\n" +
          "    type nat hook prerouting priority dstnat; policy accept;\n" +
          "    ip daddr 198.51.100.80 tcp dport 80 dnat to 10.244.1.5:8080\n" +
          "  }\n}\n",
      });
      assert.equal(load.code, 0, load.stderr);
      const judge = async (bounding: string) => {
        const r = await ns.exec(
          ["setpriv", `--bounding-set=${bounding}`, "--", Deno.execPath(), "run", "-A", DRIVER],
          { env: { TUPLE: JSON.stringify(TUPLE), NO_COLOR: "1" } },
        );
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      assert.deepEqual(await judge("-all,+net_admin"), {
        kind: "translated",
        hooks: ["prerouting"],
      });
      const without = await judge("-all");
      assert.equal(without.kind, "unreadable", JSON.stringify(without));
      assert.match(without.reason, /EPERM|not permitted/i);
    });
  },
  { needs: ["nft", "setpriv"] },
);

import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { withNetns } from "../../testbed/netns.ts";

const DRIVER = new URL("../support/sock_diag_driver.ts", import.meta.url).pathname;

kernelTest(
  "SockDiagTable.hasSocket finds exactly a connection's 4-tuple, never a listener (IPv4, IPv6)",
  async () => {
    await withNetns("sockdiag", async (ns) => {
      const r = await ns.exec([Deno.execPath(), "run", "-A", DRIVER]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), {
        "ipv4 client": true,
        "ipv4 server side": true,
        "ipv4 listener port as client": false,
        "ipv4 nobody": false,
        "ipv6 client": true,
        "ipv6 server side": true,
        "ipv6 listener port as client": false,
        "ipv6 nobody": false,
      });
    });
  },
);

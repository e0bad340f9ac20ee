import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { assertStory, runScenario, type ScenarioOptions } from "./scenario.ts";

const cases: [string, ScenarioOptions][] = [
  ["IPv4", { family: "ipv4", zone: 0 }],
  ["IPv6", { family: "ipv6", zone: 0 }],
  ["IPv4 in zone 5", { family: "ipv4", zone: 5 }],
  ["IPv6 in zone 5", { family: "ipv6", zone: 5 }],
];
for (const [label, o] of cases) {
  kernelTest(
    `main.ts at 1s/3 deletes every entry renewed each second at the 7th–10th poll after first seeing it and nothing else (${label})`,
    async () => {
      const r = await runScenario(o);
      const start = r.logs.find((l) => l.msg === "conntrack-cleaner starting")!;
      assert.equal(start.source, "events", "auto picks events here");
      assert.equal(start.source_reason, "auto: conntrack events and a ctnetlink dump work");
      assert.equal(start.deleter, "netlink");
      console.log(`${label}: renewed entries gone after ${(r.allGoneMs! / 1000).toFixed(1)} s`);
      assertStory(r, label);
    },
  );
}

const sources = ["events", "netlink", "procfs", "conntrack"];
const deleters = ["netlink", "conntrack"];
for (const source of sources) {
  for (const deleter of deleters) {
    kernelTest(
      `main.ts --source=${source} --delete-via=${deleter} deletes the renewed entries and nothing else (IPv4, IPv6 in zone 5)`,
      async () => {
        const r = await runScenario({
          family: "ipv4",
          zone: 0,
          also: [{ family: "ipv6", zone: 5 }],
          args: [`--source=${source}`, `--delete-via=${deleter}`],
        });
        const start = r.logs.find((l) => l.msg === "conntrack-cleaner starting")!;
        assert.equal(start.source, source);
        assert.equal(start.deleter, deleter);
        assertStory(r, `${source}/${deleter}`);
      },
    );
  }
}

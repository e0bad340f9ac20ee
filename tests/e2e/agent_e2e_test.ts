import { kernelTest } from "../support/kernel_test.ts";
import { assertStory, runScenario, type ScenarioOptions } from "./scenario.ts";

const cases: [string, ScenarioOptions][] = [
  ["IPv4", { family: "ipv4", zone: 0 }],
  ["IPv6", { family: "ipv6", zone: 0 }],
  ["IPv4 in zone 5", { family: "ipv4", zone: 5 }],
  ["IPv6 in zone 5", { family: "ipv6", zone: 5 }],
];
for (const [label, o] of cases) {
  kernelTest(
    `main.ts at 1s/3 deletes every entry renewed each second within 12 s and nothing else (${label})`,
    async () => {
      const r = await runScenario(o);
      console.log(`${label}: renewed entries gone after ${(r.allGoneMs! / 1000).toFixed(1)} s`);
      assertStory(r, label);
    },
  );
}

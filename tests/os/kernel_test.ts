import assert from "node:assert/strict";
import { readSynSentTimeout, synSentRenewal } from "../../lib/os/kernel.ts";

Deno.test("synSentRenewal: 5.14 and later, and the fixed stable sublevels, do not renew", () => {
  const cases: [string, string][] = [
    ["6.18.44", "no"],
    ["5.14.0", "no"],
    ["5.14", "no"],
    ["5.15.0-91-generic", "no"],
    ["6.1.0-18-amd64", "no"],
    ["5.14.0-427.13.1.el9_4.x86_64", "no"],
    ["5.10.166", "no"],
    ["5.10.165", "yes"],
    ["5.4.231", "no"],
    ["5.4.230", "yes"],
    ["4.19.272", "no"],
    ["4.19.271", "yes"],
    ["5.13.19", "yes"],
    ["5.11.0", "yes"],
    ["4.14.336", "yes"],
    ["5.10.166+", "no"],
    // Vendor kernels: the sublevel does not say whether the fix was taken back.
    ["5.10.0-28-amd64", "unknown"],
    ["5.4.0-150-generic", "unknown"],
    ["4.18.0-553.el8_10.x86_64", "unknown"],
    ["3.10.0-1160.el7.x86_64", "unknown"],
    ["", "unknown"],
    ["linux", "unknown"],
  ];
  for (const [release, want] of cases) assert.equal(synSentRenewal(release), want, release);
});

Deno.test("readSynSentTimeout reads whole seconds and says why it cannot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ok`, "120\n");
    await Deno.writeTextFile(`${dir}/bad`, "12x\n");
    assert.equal(await readSynSentTimeout(`${dir}/ok`), 120);
    assert.match(String(await readSynSentTimeout(`${dir}/bad`)), /holds "12x", not seconds/);
    assert.match(String(await readSynSentTimeout(`${dir}/missing`)), /cannot read .*missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

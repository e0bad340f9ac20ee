import assert from "node:assert/strict";
import { NatVerdicts } from "../../lib/nat/verdicts.ts";
import type { NatAnswer, NatQuestion, TargetRange } from "../../lib/nat/ruleset.ts";

const endpoint: TargetRange = {
  addrMin: new Uint8Array([10, 244, 1, 5]),
  addrMax: new Uint8Array([10, 244, 1, 5]),
  portMin: 8080,
  portMax: 8080,
};
const client = {
  family: "ipv4" as const,
  src: "192.0.2.7",
  dst: "198.51.100.80",
  sport: 40000,
  dport: 80,
  zone: 0,
};
const node = { ...client, src: "192.0.2.1", sport: 40001 };

function verdicts(o: {
  sockets?: Set<number>;
  answer: (q: NatQuestion) => NatAnswer | { kind: "unreadable"; reason: string };
  asked?: NatQuestion[];
}) {
  return new NatVerdicts({
    sockets: { hasSocket: (q) => Promise.resolve(o.sockets?.has(q.sport) ?? false), close() {} },
    isLocalAddress: (_f, a) => a === "192.0.2.1",
    asker: {
      ask: (qs) => {
        o.asked?.push(...qs);
        return Promise.resolve(qs.map(o.answer));
      },
    },
  });
}

Deno.test("NatVerdicts.judge: a non-local client without a socket is asked at prerouting only", async () => {
  const asked: NatQuestion[] = [];
  const v = verdicts({ asked, answer: () => ({ kind: "translated", targets: [endpoint] }) });
  const [r] = await v.judge([client]);
  assert.deepEqual(asked.map((q) => q.hook), ["prerouting"]);
  assert.deepEqual(r, { kind: "translated", targets: [endpoint], hooks: ["prerouting"] });
  assert.deepEqual([...asked[0]!.src], [192, 0, 2, 7]);
});

Deno.test("NatVerdicts.judge: a local source without a socket needs both hooks to agree", async () => {
  const asked: NatQuestion[] = [];
  const v = verdicts({
    asked,
    answer: (q) =>
      q.hook === "output"
        ? { kind: "not_proven", reason: "falls through" }
        : { kind: "translated", targets: [endpoint] },
  });
  const [r] = await v.judge([node]);
  assert.deepEqual(asked.map((q) => q.hook), ["prerouting", "output"]);
  assert.deepEqual(r, { kind: "not_proven", reason: "output: falls through" });
});

Deno.test("NatVerdicts.judge: a local socket means output only, whatever the source", async () => {
  const asked: NatQuestion[] = [];
  const v = verdicts({
    sockets: new Set([40000]),
    asked,
    answer: () => ({ kind: "translated", targets: [endpoint] }),
  });
  const [r] = await v.judge([client]);
  assert.deepEqual(asked.map((q) => q.hook), ["output"]);
  assert.equal(r?.kind, "translated");
});

Deno.test("NatVerdicts.judge: both hooks translated unite their targets", async () => {
  const other = { ...endpoint, addrMin: new Uint8Array([10, 244, 2, 9]) };
  const v = verdicts({
    answer: (q) => ({ kind: "translated", targets: [q.hook === "output" ? other : endpoint] }),
  });
  const [r] = await v.judge([node]);
  assert.deepEqual(r, {
    kind: "translated",
    targets: [endpoint, other],
    hooks: ["prerouting", "output"],
  });
});

Deno.test("NatVerdicts.judge: a failing socket table or asker is unreadable, never translated", async () => {
  const broken = new NatVerdicts({
    sockets: { hasSocket: () => Promise.reject(new Error("EPERM")), close() {} },
    isLocalAddress: () => false,
    asker: {
      ask: (qs) => Promise.resolve(qs.map(() => ({ kind: "translated", targets: [endpoint] }))),
    },
  });
  assert.deepEqual(await broken.judge([client]), [
    { kind: "unreadable", reason: "socket table: EPERM" },
  ]);
  const failing = new NatVerdicts({
    sockets: { hasSocket: () => Promise.resolve(false), close() {} },
    isLocalAddress: () => false,
    asker: { ask: () => Promise.reject(new Error("generation moved twice")) },
  });
  assert.deepEqual(await failing.judge([client, node]), [
    { kind: "unreadable", reason: "rules: generation moved twice" },
    { kind: "unreadable", reason: "rules: generation moved twice" },
  ]);
  const needy = verdicts({ answer: () => ({ kind: "need", chains: [], sets: [] }) });
  assert.equal((await needy.judge([client]))[0]?.kind, "unreadable");
  const unreadable = verdicts({ answer: () => ({ kind: "unreadable", reason: "legacy nat" }) });
  assert.deepEqual(await unreadable.judge([client]), [
    { kind: "unreadable", reason: "prerouting: legacy nat" },
  ]);
});

import assert from "node:assert/strict";
import { Agent } from "../../lib/agent/agent.ts";
import type { DecisionResult } from "../../lib/agent/observer.ts";
import type { Tuple } from "../../lib/model/tuple.ts";
import type { DeleteResult } from "../../lib/deleters/deleter.ts";
import { type DestinationSet, parseDestinations } from "../../lib/model/destination_set.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { readiness } from "../../lib/serve/server.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import { UnnatedRule } from "../../lib/rules/unnated.ts";
import { sampleTuple } from "../support/sample_tuple.ts";
import { type FakeAnswer, FakeTable } from "../support/fake_table.ts";
import type { Rule } from "../../lib/rules/rule.ts";
import { KubernetesProvider } from "../../lib/rules/providers/kubernetes.ts";
import { ServiceView } from "../../lib/kube/view.ts";

const T: Tuple = sampleTuple();

/** What the table answers to deletes: applies them (`deleted`), or this instead. */
function answerFor(result: DeleteResult): FakeAnswer | undefined {
  if (result === "failed") return { result: "failed", error: "boom" };
  return result === "already_gone" ? { result } : undefined;
}

/** A table holding T, whose client sends its SYN again every second: renewed at every read. */
function renewingTable(): FakeTable {
  const table = new FakeTable([{ ...T, unreplied: true, createdAt: 0, retransmits: true }]);
  table.readMs = 5;
  return table;
}

function setup(
  opts: {
    result?: DeleteResult;
    dryRun?: boolean;
    threshold?: number;
    destinations?: string;
    rules?: (tracker: RenewalTracker) => Rule[];
  } = {},
) {
  const table = renewingTable();
  table.answer = answerFor(opts.result ?? "deleted");
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "info", write: (l) => lines.push(JSON.parse(l)) });
  const results: DecisionResult[][] = [];
  const skipped: number[] = [];
  const tracker = new RenewalTracker({ threshold: opts.threshold ?? 1 });
  const agent = new Agent({
    source: table,
    deleter: table,
    tracker,
    rules: opts.rules ? opts.rules(tracker) : [new RenewalRule(tracker)],
    ...(opts.destinations === undefined ? {} : { destinations: scope(opts.destinations) }),
    log,
    intervalMs: 1000,
    ...(opts.dryRun === undefined ? {} : { dryRun: opts.dryRun }),
    clock: () => table.now,
    sleep: (ms) => {
      table.now += ms;
      return Promise.resolve();
    },
    observer: {
      deletions: (r) => results.push(r.map((x) => x.result)),
      skippedTicks: (n) => skipped.push(n),
    },
  });
  return { table, lines, agent, results, skipped };
}

async function pollEverySecond(s: ReturnType<typeof setup>, n: number) {
  const reports = [];
  for (let i = 0; i < n; i++) {
    reports.push(await s.agent.pollOnce());
    s.table.now += 1000;
  }
  return reports;
}

function scope(list: string): DestinationSet {
  const d = parseDestinations(list);
  if (typeof d === "string") throw new Error(d);
  return d;
}

Deno.test("Agent.pollOnce applies --destinations to the renewal rule: renewed entries outside it stay", async () => {
  const outside = setup({ threshold: 1, destinations: "10.0.0.3,10.0.0.2:81,[::/0]:80" });
  const r = await pollEverySecond(outside, 6);
  assert.equal(outside.table.calls.length, 0);
  assert.ok(r.every((x) => x.ok && x.track!.tracked === 0), "out of scope: not even tracked");
  const inside = setup({ threshold: 1, destinations: "10.0.0.0/24:80" });
  await pollEverySecond(inside, 6);
  assert.deepEqual(inside.table.calls, [[T]]);
  const line = inside.lines.find((l) => l.msg === "deleted stale entry")!;
  assert.equal(line.rule, "renewals");
  assert.match(String(line.reason), /renewed 2 times, more than the threshold 1/);
});

Deno.test("Agent.pollOnce deletes a renewed entry after more than threshold renewals and logs it once", async () => {
  const s = setup({ threshold: 1 });
  const reports = await pollEverySecond(s, 6);
  assert.equal(s.table.calls.length, 1);
  assert.deepEqual(s.table.calls[0], [T]);
  const deleted = s.lines.filter((l) => l.msg === "deleted stale entry");
  assert.equal(deleted.length, 1);
  assert.equal(deleted[0]!.src, "10.0.0.1");
  assert.equal(deleted[0]!.sport, 40000);
  assert.equal(deleted[0]!.zone, 0);
  assert.equal(deleted[0]!.renewals, 2);
  assert.equal(typeof deleted[0]!.tracked_s, "number");
  assert.deepEqual(s.results, [["deleted"]]);
  assert.ok(reports.every((r) => r.ok));
  // the tuple was forgotten: a new entry with the same tuple starts from zero
  assert.ok(reports.at(-1)!.track!.tracked === 1 && reports.at(-1)!.results.length === 0);
});

Deno.test("Agent.pollOnce in a dry run deletes nothing and says what it would delete", async () => {
  const s = setup({ dryRun: true });
  await pollEverySecond(s, 6);
  assert.equal(s.table.calls.length, 0);
  const would = s.lines.filter((l) => l.msg === "dry run: would delete stale entry");
  assert.equal(would.length, 1);
  assert.equal(would[0]!.dst, "10.0.0.2");
  assert.deepEqual(s.results, [["dry_run"]]);
});

Deno.test("Agent.pollOnce retries a failed delete at the next poll and logs the cause", async () => {
  const s = setup({ result: "failed" });
  await pollEverySecond(s, 7);
  assert.ok(s.table.calls.length >= 3, `retried: ${s.table.calls.length}`);
  const errors = s.lines.filter((l) => l.level === "error");
  assert.equal(errors.length, 1, "said once (rate-limited per cause)");
  assert.equal(errors[0]!.error, "boom");
  assert.ok(!s.lines.some((l) => l.msg === "deleted stale entry"), "never logs success on failure");
});

Deno.test("Agent.pollOnce survives a failing source, says so once, and recovers", async () => {
  const s = setup();
  s.table.fail = new Error("EIO");
  await pollEverySecond(s, 3);
  assert.equal(s.agent.status.lastSnapshotOk, false);
  assert.match(s.agent.status.lastError!, /EIO/);
  assert.equal(s.lines.filter((l) => l.level === "error").length, 1);
  s.table.fail = undefined;
  const [r] = await pollEverySecond(s, 1);
  assert.ok(r);
  assert.ok(r.ok);
  assert.equal(s.agent.status.lastSnapshotOk, true);
  assert.ok(s.lines.some((l) => l.msg === "reading the conntrack table works again"));
});

Deno.test("Agent.run polls once per interval, never overlaps, counts the ticks a slow poll missed and warns once", async () => {
  const s = setup({ threshold: 100 });
  const stop = new AbortController();
  s.table.readMs = 10;
  const orig = s.table.snapshot.bind(s.table);
  s.table.snapshot = () => {
    if (s.table.reads === 3 || s.table.reads === 6) s.table.now += 3500; // two slow polls
    if (s.table.reads === 10) stop.abort();
    return orig();
  };
  await s.agent.run(stop.signal);
  assert.equal(s.table.reads, 11);
  assert.deepEqual(s.skipped, [3, 3]);
  assert.equal(s.lines.filter((l) => l.level === "warn").length, 1);
});

Deno.test("Agent.pollOnce warns about candidates past --max-candidates at most once a minute", async () => {
  const s = setup();
  s.table.overflow = 5000;
  await pollEverySecond(s, 70);
  const warns = s.lines.filter((l) =>
    String(l.msg).startsWith("more SYN_SENT [UNREPLIED] entries than --max-candidates")
  );
  assert.equal(warns.length, 2, "at 0 s and after a minute");
  assert.equal(warns[0]!.not_tracked, 5000);
});

Deno.test("Agent.pollOnce hands the deleter the conntrack id of the entry it saw renewed", async () => {
  const s = setup({ threshold: 1 });
  s.table.entries[0]!.id = 77;
  await pollEverySecond(s, 6);
  assert.deepEqual(s.table.calls, [[{ ...T, id: 77 }]]);
});

Deno.test("Agent.pollOnce says a failure cause at error level once a minute per cause, with the lines held back", async () => {
  const s = setup({ result: "failed", threshold: 0 });
  let n = 0;
  s.table.delete = (tuples) => {
    n++;
    return Promise.resolve(tuples.map((tuple) => ({
      tuple,
      result: "failed" as const,
      error: n % 2 ? "EPERM (Operation not permitted)" : "timed out",
    })));
  };
  await pollEverySecond(s, 75);
  const errors = s.lines.filter((l) => l.level === "error");
  assert.deepEqual(
    errors.map((l) => [l.error, l.held_back]),
    [
      ["EPERM (Operation not permitted)", 0],
      ["timed out", 0],
      ["EPERM (Operation not permitted)", 29],
      ["timed out", 29],
    ],
  );
  assert.match(String(errors[0]!.msg), /at most once a minute per cause/);
});

Deno.test("Agent.status: deletions failing 3 polls in a row make readiness fail with the cause, until one succeeds", async () => {
  const s = setup({ result: "failed", threshold: 0 });
  while (s.table.calls.length < 2) await pollEverySecond(s, 1);
  assert.equal(s.agent.status.deleteFailures, 2);
  assert.ok(readiness(s.agent.status).ok, "two failed polls: still ready");
  while (s.table.calls.length < 3) await pollEverySecond(s, 1);
  assert.deepEqual(readiness(s.agent.status), {
    ok: false,
    reason: "deleting has failed in 3 polls in a row: fake deleter: boom",
  });
  s.table.answer = undefined; // deletes work again
  while (s.table.calls.length < 4) await pollEverySecond(s, 1);
  assert.deepEqual(readiness(s.agent.status), { ok: true, reason: "ok" });
});

Deno.test("Agent.pollOnce warns when an entry reported already gone is still in the next snapshot", async () => {
  const s = setup({ result: "already_gone", threshold: 0 });
  await pollEverySecond(s, 70);
  const warns = s.lines.filter((l) =>
    String(l.msg).startsWith("the deleter reports success but the entry is still there")
  );
  assert.equal(warns.length, 2, "at once, then a minute later (rate-limited)");
  assert.equal(warns[0]!.level, "warn");
  assert.equal(warns[0]!.sport, 40000);
  // An honest deleter: the entry really is gone at the next snapshot.
  const h = setup({ result: "already_gone", threshold: 0 });
  const orig = h.table.delete.bind(h.table);
  h.table.delete = (t) => {
    h.table.entries[0]!.goneAt = h.table.now; // it got its reply just before the delete
    return orig(t);
  };
  await pollEverySecond(h, 5);
  assert.ok(!h.lines.some((l) => String(l.msg).includes("still there")));
});

Deno.test("Agent.pollOnce logs the first 10 deletions of a poll at info, then one summary by rule and result", async () => {
  const s = setup({ threshold: 1 });
  // 25 renewed entries instead of one: the same client from 25 source ports.
  const [one] = s.table.entries;
  s.table.entries.splice(
    0,
    1,
    ...Array.from({ length: 25 }, (_, i) => ({ ...one!, sport: 40000 + i })),
  );
  await pollEverySecond(s, 6);
  assert.equal(s.table.calls.flat().length, 25, "every stale entry is deleted");
  const deleted = s.lines.filter((l) => l.msg === "deleted stale entry");
  assert.equal(deleted.length, 10, "the first 10 at info (the rest at debug)");
  const summary = s.lines.filter((l) => String(l.msg).includes("acted on this poll"));
  assert.equal(summary.length, 1);
  assert.equal(summary[0]!.total, 25);
  assert.equal(summary[0]!.deleted_renewals, 25);
  assert.equal(summary[0]!.level, "info");
});

Deno.test("Agent.run: polls that always overrun the interval still let the event loop turn between them", async () => {
  const s = setup();
  s.table.readMs = 2500; // every read outlasts the 1 s interval
  const stop = new AbortController();
  let timerFired = false;
  let readsWhenTimerFired = -1;
  setTimeout(() => {
    timerFired = true;
    readsWhenTimerFired = s.table.reads;
  }, 0);
  const snapshot = s.table.snapshot.bind(s.table);
  s.table.snapshot = () => {
    // Without a yield between polls, the timer above could only fire after the loop ends.
    if (s.table.reads >= 200) stop.abort();
    return snapshot();
  };
  await s.agent.run(stop.signal);
  assert.ok(timerFired);
  assert.ok(readsWhenTimerFired < 200, `the timer fired after ${readsWhenTimerFired} polls`);
});

Deno.test("Agent.pollOnce asks the NAT judge about what the rules name, once a poll, and the rule decides on its verdict", async () => {
  const table = renewingTable();
  table.readMs = 0;
  table.now = 5000;
  const tracker = new RenewalTracker({ threshold: 3 });
  const asked: Tuple[][] = [];
  let verdict: "translated" | "not_proven" = "not_proven";
  const ep = new Uint8Array([10, 244, 1, 5]);
  const agent = new Agent({
    source: table,
    deleter: table,
    tracker,
    rules: [
      new UnnatedRule({ afterMs: 0, synSentTimeoutS: 120, providers: [] }),
    ],
    nat: {
      judge: (ts) => {
        asked.push([...ts]);
        return Promise.resolve(ts.map(() =>
          verdict === "translated"
            ? {
              kind: "translated" as const,
              hooks: ["prerouting" as const],
              targets: [{ addrMin: ep, addrMax: ep, portMin: 80, portMax: 80 }],
            }
            : { kind: "not_proven" as const, reason: "no rule" }
        ));
      },
    },
    log: createLogger({ level: "error", write: () => {} }),
    intervalMs: 1000,
    clock: () => table.now,
  });
  await agent.pollOnce();
  assert.equal(table.calls.length, 0, "not proven: kept");
  verdict = "translated";
  await agent.pollOnce();
  assert.deepEqual(
    asked.map((b) => b.map((t) => t.sport)),
    [[T.sport], [T.sport]],
    "a batch a poll",
  );
  assert.deepEqual(table.calls.map((c) => c.map((t) => t.sport)), [[T.sport]]);
});

Deno.test("Agent.pollOnce gives the rules only the candidates inside --destinations (the Kubernetes provider too)", async () => {
  // A ready Service at T's destination: the provider vouches for T whatever the scope.
  const view = ServiceView.build(
    [{
      key: "web/shop",
      addresses: [{ family: "ipv4", addr: T.dst, kind: "cluster" }],
      ports: [{ name: "", port: T.dport }],
    }],
    [{
      key: "web/shop-a",
      service: "web/shop",
      family: "ipv4",
      ports: [{ name: "", port: 8080 }],
      ready: 1,
      serving: "10.244.0.5",
    }],
    [],
  );
  const rules = () => [
    new UnnatedRule({
      afterMs: 0,
      synSentTimeoutS: 120,
      providers: [new KubernetesProvider({ view: () => view })],
    }),
  ];
  const outside = setup({ threshold: 100, destinations: "10.0.0.3", rules });
  await pollEverySecond(outside, 3);
  assert.deepEqual(outside.table.calls, [], "outside --destinations: never acted on");
  const inside = setup({ threshold: 100, destinations: "10.0.0.2", rules });
  await pollEverySecond(inside, 3);
  assert.deepEqual(inside.table.calls[0], [T], "inside: the provider's vouch acts");
});

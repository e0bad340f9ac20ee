import assert from "node:assert/strict";
import { type RemovedEndpoints, StaleEndpointRule } from "../../lib/rules/stale_endpoint.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";

const TRACK = { stale: [], renewals: 0, tracked: 0, forgotten: 0 };

function candidate(o: Partial<Candidate> = {}): Candidate {
  return {
    family: "ipv4",
    src: "10.1.0.7",
    dst: "10.96.0.10",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 110,
    seenFrom: 10_000,
    seenTo: 10_001,
    id: 42,
    translated: { addr: "10.244.1.5", port: 8080 },
    ...o,
  };
}
const snap = (candidates: Candidate[]): Snapshot => ({
  candidates,
  scanned: candidates.length,
  malformed: 0,
  startedAt: 10_000,
  finishedAt: 10_002,
});

/** Endpoints removed: `dst dport endpoint` → Service. */
function removed(map: Record<string, string>): RemovedEndpoints & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    removedAt: (a, p, e) => {
      asked.push(`${a} ${p} ${e}`);
      const service = map[`${a} ${p} ${e}`];
      return service === undefined ? undefined : { at: 5_000, service };
    },
  };
}

const rule = (endpoints: RemovedEndpoints, afterMs = 2000) =>
  new StaleEndpointRule({ afterMs, synSentTimeoutS: 120, endpoints });

Deno.test("a translated entry toward a removed endpoint is decided, with its id and details", () => {
  const eps = removed({ "10.96.0.10 80 10.244.1.5 8080": "web/shop" });
  const ds = rule(eps).decide({
    snapshot: snap([candidate()]),
    track: TRACK,
    sameSince: () => 10_001,
  });
  assert.deepEqual(ds, [{
    rule: "stale_endpoint",
    tuple: { family: "ipv4", src: "10.1.0.7", dst: "10.96.0.10", sport: 40000, dport: 80, zone: 0 },
    reason: "translated to 10.244.1.5:8080, no longer a serving endpoint of Service web/shop",
    ageMs: 9000,
    service: "web/shop",
    endpoint: "10.244.1.5:8080",
    id: 42,
  }]);
  assert.deepEqual(
    eps.asked,
    ["10.96.0.10 80 10.244.1.5 8080"],
    "asked about the translated destination",
  );
});

Deno.test("an endpoint not known removed (serving, or never seen) keeps the entry", () => {
  const eps = removed({});
  assert.deepEqual(
    rule(eps).decide({ snapshot: snap([candidate()]), track: TRACK, sameSince: () => 0 }),
    [],
  );
});

Deno.test("un-NATed entries are not this rule's; young entries wait for --unnated-after", () => {
  const eps = removed({
    "10.96.0.10 80 10.244.1.5 8080": "web/shop",
    "2001:db8::10 80 fd00::5 8080": "web/v6",
  });
  const unnated = candidate({ sport: 40001 });
  delete unnated.translated;
  // 120 − 119 − 1 = 0 s by the kernel, 1.5 s since first seen: younger than 2 s.
  const young = candidate({ sport: 40002, timeout: 119 });
  const v6 = candidate({
    family: "ipv6",
    src: "fd01::7",
    dst: "2001:db8::10",
    sport: 40003,
    translated: { addr: "fd00::5", port: 8080 },
  });
  const ds = rule(eps).decide({
    snapshot: snap([unnated, young, v6]),
    track: TRACK,
    sameSince: (c) => (c.sport === 40002 ? 8_500 : 0),
  });
  assert.deepEqual(ds.map((d) => [d.tuple.sport, d.reason]), [[
    40003,
    "translated to [fd00::5]:8080, no longer a serving endpoint of Service web/v6",
  ]]);
});

Deno.test("age counts from the kernel's timeout or from the first sighting, whichever says more", () => {
  const r = rule(removed({}));
  assert.equal(r.ageMs(candidate({ timeout: 100 }), undefined), 19_000);
  assert.equal(r.ageMs(candidate({ timeout: 119 }), 7_000), 3_000);
  assert.throws(() => rule(removed({}), -1), RangeError);
});

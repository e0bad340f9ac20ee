/** The namespace helper's pure argument building (no kernel needed). */
import assert from "node:assert/strict";
import { type EntrySpec, insertArgs, isCandidate } from "../../testbed/netns.ts";

const syn = (sport: number, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  src: "10.0.0.1",
  dst: "10.0.0.2",
  sport,
  dport: 80,
  state: "SYN_SENT",
  timeout: 30,
  ...extra,
});

Deno.test("insertArgs builds conntrack -I arguments with the status each state needs", () => {
  assert.equal(
    insertArgs(syn(1234, { timeout: 120 })).join(" "),
    "-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1234 --dport 80 --state SYN_SENT -u UNREPLIED -t 120",
  );
  assert.equal(
    insertArgs(syn(1, { state: "ESTABLISHED", zone: 5, mark: 9 })).join(" "),
    "-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1 --dport 80 --state ESTABLISHED " +
      "-u SEEN_REPLY,ASSURED -t 30 -w 5 -m 9",
  );
  assert.equal(
    insertArgs(syn(1, { state: "TIME_WAIT" })).slice(-4).join(" "),
    "-u SEEN_REPLY,ASSURED -t 30",
  );
  assert.equal(
    insertArgs({
      proto: "udp",
      src: "2001:db8::1",
      dst: "2001:db8::2",
      sport: 5,
      dport: 53,
      timeout: 30,
    })
      .join(" "),
    "-I -p udp -s 2001:db8::1 -d 2001:db8::2 --sport 5 --dport 53 -t 30",
  );
  assert.ok(!insertArgs(syn(1, { status: "" })).includes("-u"));
  assert.equal(
    insertArgs(syn(1, { status: "SEEN_REPLY" })).join(" ").includes("-u SEEN_REPLY"),
    true,
  );
});

Deno.test("insertArgs rejects option-like addresses, mixed families and impossible specs", () => {
  for (
    const bad of [
      syn(1, { src: "-F" }),
      syn(1, { dst: "10.0.0.2 -F" }),
      syn(1, { dst: "2001:db8::2" }),
      syn(70000),
      syn(1, { zone: -1 }),
      syn(1, { timeout: 1.5 }),
      syn(1, { state: undefined }),
      {
        proto: "udp",
        src: "10.0.0.1",
        dst: "10.0.0.2",
        sport: 1,
        dport: 2,
        state: "SYN_SENT",
        timeout: 1,
      },
      syn(1, { status: "UNREPLIED -F" }),
    ] as EntrySpec[]
  ) assert.throws(() => insertArgs(bad), Error, JSON.stringify(bad));
});

Deno.test("isCandidate is true exactly for TCP SYN_SENT without SEEN_REPLY", () => {
  assert.equal(isCandidate(syn(1)), true);
  assert.equal(isCandidate(syn(1, { status: "UNREPLIED,ASSURED" })), true);
  assert.equal(isCandidate(syn(1, { status: "SEEN_REPLY" })), false);
  assert.equal(isCandidate(syn(1, { state: "ESTABLISHED", status: "" })), false);
  assert.equal(
    isCandidate({ proto: "udp", src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, timeout: 1 }),
    false,
  );
});

import assert from "node:assert/strict";
import fc from "fast-check";
import { parseTuple, type Tuple } from "../../lib/model/tuple.ts";
import { ConntrackCliDeleter, deleteArgs as buildArgs } from "../../lib/deleters/conntrack_cli.ts";
import type { ProcessRunner, RunOptions, RunResult } from "../../lib/os/process.ts";
import { rfc5952 } from "../support/gen_line.ts";
import { sampleTuple } from "../support/sample_tuple.ts";

const T1: Tuple = sampleTuple();
const T2: Tuple = {
  family: "ipv6",
  src: "2001:db8::1",
  dst: "2001:db8::2",
  sport: 1234,
  dport: 443,
  zone: 5,
};
const T3: Tuple = { ...T1, sport: 40001 };

/** What conntrack -o extended prints for a deleted entry. */
const printed = (t: Tuple) =>
  `${
    t.family === "ipv4" ? "ipv4     2" : "ipv6     10"
  } tcp      6 119 SYN_SENT src=${t.src} dst=${t.dst} sport=${t.sport} dport=${t.dport} [UNREPLIED] src=${t.dst} dst=${t.src} sport=${t.dport} dport=${t.sport} mark=0 ${
    t.zone ? `zone=${t.zone} ` : ""
  }use=1`;

/** The arguments for a raw tuple: parsed by the one parser (RangeError when refused), then built. */
function deleteArgs(t: Tuple): string[] {
  const r = parseTuple(t);
  if (!r.ok) throw new RangeError(r.problem);
  return buildArgs(r.tuple);
}

class FakeRunner implements ProcessRunner {
  calls: { cmd: string; args: readonly string[]; options: RunOptions }[] = [];
  constructor(readonly answer: (args: readonly string[], stdin?: string) => Partial<RunResult>) {}
  run(cmd: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    this.calls.push({ cmd, args, options });
    return Promise.resolve({
      code: 0,
      stdout: "",
      stderr: "",
      timedOut: false,
      ...this.answer(args, options.stdin),
    });
  }
}

Deno.test("deleteArgs names the exact tuple, zone, state and status", () => {
  assert.deepEqual(deleteArgs(T2), [
    "-D",
    "-p",
    "tcp",
    "-f",
    "ipv6",
    "-s",
    "2001:db8::1",
    "-d",
    "2001:db8::2",
    "--sport",
    "1234",
    "--dport",
    "443",
    "-w",
    "5",
    "--state",
    "SYN_SENT",
    "-u",
    "UNREPLIED",
    "-o",
    "extended",
  ]);
});

Deno.test("parseTuple then deleteArgs: refuses any tuple field that is not a valid value, spells addresses canonically", () => {
  const bad: Tuple[] = [
    { ...T1, src: "-F" },
    { ...T1, dst: "10.0.0.2 -F" },
    { ...T1, src: "2001:db8::1" },
    { ...T1, sport: 65536 },
    { ...T1, dport: -1 },
    { ...T1, zone: 1.5 },
    { ...T1, family: "inet" as Tuple["family"] },
  ];
  for (const t of bad) assert.throws(() => deleteArgs(t), RangeError, JSON.stringify(t));
  // valid but not canonical: accepted (as the netlink deleter accepts it), sent canonically
  const args = deleteArgs({ ...T2, src: "2001:0DB8::1" });
  assert.equal(args[args.indexOf("-s") + 1], "2001:db8::1");
  // whatever string sits in an address field, it either is that address, spelled
  // canonically, or is refused; the generator hits both branches on purpose
  const octet = fc.oneof(fc.constantFrom(0, 255, 256), fc.integer({ min: 0, max: 300 }));
  const quad = fc.tuple(octet, octet, octet, octet, fc.boolean()).map(([a, b, c, d, pad]) =>
    [a, b, c, d].map((o, i) => (pad && i === 1 ? String(o).padStart(3, "0") : String(o))).join(".")
  );
  const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  const v6 = fc.tuple(
    fc.array(group, { minLength: 8, maxLength: 8 }),
    fc.constantFrom("rfc5952", "full", "upper"),
  ).map(([g, how]) => {
    const canonical = rfc5952(g);
    if (how === "rfc5952") return canonical;
    if (how === "upper") return canonical.toUpperCase();
    return g.map((x) => x.toString(16).padStart(4, "0")).join(":");
  });
  /** Canonical IPv4, judged here without lib/model/addr.ts: four decimal octets 0-255, no leading zero. */
  const isQuad = (a: string) =>
    /^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/.test(a) &&
    a.split(".").every((o) => Number(o) <= 255);
  /** Any IPv6 spelling of eight groups, judged here without lib/model/addr.ts: its RFC 5952 form, or undefined. */
  const v6Canonical = (a: string) => {
    if (!/^[0-9a-fA-F:]+$/.test(a)) return undefined;
    const halves = a.split("::");
    if (halves.length > 2) return undefined;
    const parts = halves.map((h) => (h === "" ? [] : h.split(":")));
    const n = parts.reduce((k, p) => k + p.length, 0);
    if (halves.length === 1 ? n !== 8 : n > 7) return undefined;
    if (parts.flat().some((x) => !/^[0-9a-fA-F]{1,4}$/.test(x))) return undefined;
    const groups = halves.length === 1
      ? parts[0]
      : [...parts[0]!, ...new Array(8 - n).fill("0"), ...parts[1]!];
    return rfc5952(groups!.map((x) => parseInt(x, 16)));
  };
  const isV6 = (a: string) => v6Canonical(a) !== undefined;
  const canonicalOf = (family: string, a: string) => family === "ipv4" ? a : v6Canonical(a);
  let accepted = 0, refused = 0;
  for (
    const [family, addr, ok, base] of [
      ["ipv4", fc.oneof(quad, fc.string({ maxLength: 20 })), isQuad, T1],
      ["ipv6", fc.oneof(v6, fc.string({ maxLength: 40 })), isV6, T2],
    ] as const
  ) {
    fc.assert(
      fc.property(addr, (a) => {
        let args: string[] | undefined;
        try {
          args = deleteArgs({ ...base, src: a });
        } catch (e) {
          assert.ok(e instanceof RangeError);
        }
        assert.equal(args !== undefined, ok(a), `${family} ${JSON.stringify(a)}`);
        if (args !== undefined) {
          assert.equal(args[args.indexOf("-s") + 1], canonicalOf(family, a));
          accepted++;
        } else refused++;
      }),
      { numRuns: 2000 },
    );
  }
  assert.ok(accepted > 200 && refused > 1000, `${accepted} accepted, ${refused} refused`);
});

Deno.test("parseTuple then deleteArgs take ports and zones 0 to 65535 and refuses 65536, -1 and fractions (boundaries drawn)", () => {
  const value = fc.oneof(
    fc.constantFrom(0, 1, 65535, 65536, 65537, -1, 0.5, 65535.5, Number.NaN),
    fc.integer({ min: -70000, max: 140000 }),
  );
  let edge = 0;
  fc.assert(
    fc.property(fc.constantFrom("sport", "dport", "zone"), value, fc.boolean(), (field, v, v6) => {
      const t = { ...(v6 ? T2 : T1), [field]: v };
      const ok = Number.isInteger(v) && v >= 0 && v <= 65535;
      if (v === 0 || v === 65535 || v === 65536) edge++;
      if (!ok) {
        assert.throws(() => deleteArgs(t), RangeError, `${field}=${v}`);
        return;
      }
      const args = deleteArgs(t);
      const flag = { sport: "--sport", dport: "--dport", zone: "-w" }[field];
      assert.equal(args[args.indexOf(flag) + 1], String(v), `${field}=${v}`);
    }),
    { numRuns: 2000 },
  );
  assert.ok(edge > 200, `${edge} boundary values drawn`);
});

Deno.test("ConntrackCliDeleter batch mode sends all tuples through one conntrack -R - and reads what it printed", async () => {
  const runner = new FakeRunner(() => ({ stdout: printed(T1) + "\n" + printed(T2) + "\n" }));
  const d = new ConntrackCliDeleter({ bin: "/sbin/conntrack", runner });
  const out = await d.delete([T1, T2, T3]);
  assert.equal(runner.calls.length, 1);
  assert.equal(runner.calls[0]!.cmd, "/sbin/conntrack");
  assert.deepEqual(runner.calls[0]!.args, ["-R", "-"]);
  assert.equal(
    runner.calls[0]!.options.stdin,
    [T1, T2, T3].map((t) => deleteArgs(t).join(" ") + "\n").join(""),
  );
  assert.deepEqual(out.map((o) => o.result), ["deleted", "deleted", "already_gone"]);
});

Deno.test("ConntrackCliDeleter batch mode marks unprinted tuples failed when conntrack fails part-way", async () => {
  const runner = new FakeRunner(() => ({
    code: 1,
    stdout: printed(T1) + "\n",
    stderr: "conntrack v1.4.7 (conntrack-tools): Interrupted system call\n",
  }));
  const out = await new ConntrackCliDeleter({ runner }).delete([T1, T3]);
  assert.equal(out[0]!.result, "deleted");
  assert.equal(out[1]!.result, "failed");
  assert.match(out[1]!.error!, /exited with code 1: .*Interrupted system call/);
});

Deno.test("ConntrackCliDeleter each mode reads exit 1 with '0 flow entries' as already gone", async () => {
  const runner = new FakeRunner((args) =>
    args[12] === "80" && args[10] === "40000"
      ? {
        stdout: printed(T1) + "\n",
        stderr: "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n",
      }
      : {
        code: 1,
        stderr: "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n",
      }
  );
  const out = await new ConntrackCliDeleter({ runner, mode: "each" }).delete([T1, T3]);
  assert.equal(runner.calls.length, 2);
  assert.deepEqual(runner.calls[1]!.args, deleteArgs(T3));
  assert.deepEqual(out.map((o) => o.result), ["deleted", "already_gone"]);
});

Deno.test("ConntrackCliDeleter reports a missing binary, a refusal and a hang as failures with the cause", async () => {
  const cases: [Partial<RunResult>, RegExp][] = [
    [{
      code: -1,
      spawnError: "conntrack: not found (install conntrack-tools, or set --conntrack-bin)",
    }, /not found/],
    [
      { code: 1, stderr: "conntrack v1.4.7 (conntrack-tools): Operation not permitted\n" },
      /Operation not permitted/,
    ],
    [{ code: 137, timedOut: true }, /did not finish in time and was killed/],
  ];
  for (const mode of ["batch", "each"] as const) {
    for (const [answer, want] of cases) {
      const out = await new ConntrackCliDeleter({ runner: new FakeRunner(() => answer), mode })
        .delete([T1]);
      assert.equal(out[0]!.result, "failed");
      assert.match(out[0]!.error!, want);
    }
  }
});

Deno.test("ConntrackCliDeleter never runs conntrack for a refused tuple, and keeps the order of outcomes", async () => {
  const runner = new FakeRunner(() => ({ stdout: printed(T3) + "\n" }));
  const out = await new ConntrackCliDeleter({ runner }).delete([{ ...T1, src: "-F" }, T3]);
  assert.equal(runner.calls.length, 1);
  assert.ok(!runner.calls[0]!.options.stdin!.includes("-F"));
  assert.deepEqual(out.map((o) => o.result), ["failed", "deleted"]);
  assert.match(out[0]!.error!, /refusing tuple/);
});

Deno.test("ConntrackCliDeleter splits large batches and scales the deadline with the batch", async () => {
  const runner = new FakeRunner(() => ({}));
  const tuples = Array.from({ length: 5 }, (_, i) => ({ ...T1, sport: 1000 + i }));
  await new ConntrackCliDeleter({ runner, batchSize: 2, baseTimeoutMs: 100, perTupleTimeoutMs: 10 })
    .delete(tuples);
  assert.deepEqual(runner.calls.map((c) => c.options.timeoutMs), [120, 120, 110]);
});

Deno.test("ConntrackCliDeleter.worstCaseMs counts every process killed at its timeout; maxPerPoll defaults to 100", () => {
  const batch = new ConntrackCliDeleter({ baseTimeoutMs: 5000, perTupleTimeoutMs: 1000 });
  assert.equal(batch.maxPerPoll, 100);
  assert.equal(batch.worstCaseMs(100), 5000 + 100 * 1000);
  assert.equal(batch.worstCaseMs(101), 2 * 5000 + 101 * 1000);
  const each = new ConntrackCliDeleter({ mode: "each", maxPerPoll: 7 });
  assert.equal(each.maxPerPoll, 7);
  assert.equal(each.worstCaseMs(3), 3 * (5000 + 1000));
});

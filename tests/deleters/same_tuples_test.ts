import assert from "node:assert/strict";
import fc from "fast-check";
import { ConntrackCliDeleter, deleteArgs } from "../../lib/deleters/conntrack_cli.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { Errno } from "../../lib/os/errno.ts";
import type { ProcessRunner, RunOptions, RunResult } from "../../lib/os/process.ts";
import { parseTuple, type Tuple } from "../../lib/model/tuple.ts";
import { decodeRequest, errorFor, FakeKernel } from "../support/netlink_fake.ts";

/** Records what the CLI deleter would run; conntrack "deletes nothing". */
class RecordingRunner implements ProcessRunner {
  stdin: string[] = [];
  run(_cmd: string, _args: readonly string[], options: RunOptions): Promise<RunResult> {
    this.stdin.push(options.stdin ?? "");
    return Promise.resolve({ code: 0, stdout: "", stderr: "", timedOut: false });
  }
}

const V4 = fc.oneof(
  fc.constantFrom("10.0.0.1", "0.0.0.0", "255.255.255.255"),
  fc.ipV4(),
  fc.constantFrom("010.0.0.1", "256.0.0.1", "10.0.0.1 -F", "::1"),
);
const V6 = fc.oneof(
  fc.constantFrom("::", "::1", "::ffff:10.0.0.1", "::FFFF:A00:1", "2001:DB8::1", "2001:db8::1"),
  fc.ipV6(),
  fc.constantFrom("1:2:3:4:5:6:7:8:9", "10.0.0.1", ":::1"),
);
const JUNK = fc.oneof(fc.constantFrom("-F", ""), fc.string({ maxLength: 12 }));
const number = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(0, 1, 65535) },
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 65535 }) },
  { weight: 1, arbitrary: fc.constantFrom(65536, -1, 1.5, Number.NaN) },
);

/** Raw tuples as anything might hand them over: boundary values drawn often. */
const rawTuple = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom("ipv4", "ipv6") },
  { weight: 1, arbitrary: fc.constantFrom("inet", "IPV4") },
).chain((family) => {
  const addr = fc.oneof(
    { weight: 18, arbitrary: family === "ipv6" ? V6 : V4 },
    { weight: 1, arbitrary: family === "ipv6" ? V4 : V6 },
    { weight: 1, arbitrary: JUNK },
  );
  return fc.record({
    family: fc.constant(family),
    src: addr,
    dst: addr,
    sport: number,
    dport: number,
    zone: fc.oneof(number, fc.constantFrom(65535, 65536)),
  });
});

Deno.test("ConntrackCliDeleter and NetlinkDeleter accept exactly the tuples parseTuple accepts, and send them canonically", async () => {
  const kernel = new FakeKernel((req, s) => [errorFor(req, s.portId, Errno.ENOENT)]);
  const netlink = new NetlinkDeleter({ openTransport: () => kernel.open() });
  let accepted = 0, refused = 0;
  try {
    await fc.assert(
      fc.asyncProperty(rawTuple, async (raw) => {
        const t = raw as unknown as Tuple;
        const parsed = parseTuple(t);
        const runner = new RecordingRunner();
        const cli = new ConntrackCliDeleter({ runner });
        const sentBefore = kernel.requests.length;
        const [viaCli] = await cli.delete([t]);
        const [viaNetlink] = await netlink.delete([t]);
        const sent = kernel.requests.slice(sentBefore);
        // Both refuse, or both try: never one without the other.
        assert.equal(viaCli!.result === "failed", !parsed.ok, `cli: ${JSON.stringify(viaCli)}`);
        assert.equal(viaNetlink!.result === "failed", !parsed.ok, JSON.stringify(viaNetlink));
        if (!parsed.ok) {
          refused++;
          assert.match(
            viaCli!.error!,
            new RegExp(`refusing tuple: ${RegExp.escape(parsed.problem)}`),
          );
          assert.match(
            viaNetlink!.error!,
            new RegExp(`invalid tuple: ${RegExp.escape(parsed.problem)}`),
          );
          assert.deepEqual(runner.stdin, []);
          assert.equal(sent.length, 0);
          return;
        }
        accepted++;
        assert.equal(viaCli!.result, "already_gone");
        assert.equal(viaNetlink!.result, "already_gone");
        // The same canonical tuple reaches the command line and the kernel.
        assert.deepEqual(runner.stdin, [deleteArgs(parsed.tuple).join(" ") + "\n"]);
        assert.equal(sent.length, 1);
        assert.deepEqual(decodeRequest(sent[0]!).tuple, { ...parsed.tuple });
      }),
      { numRuns: 1500 },
    );
  } finally {
    netlink.close();
  }
  assert.ok(accepted > 150 && refused > 150, `${accepted} accepted, ${refused} refused`);
});

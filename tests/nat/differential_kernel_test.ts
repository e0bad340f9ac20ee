/**
 * The NAT evaluator against the kernel (issue 19, item 5): random nat rule
 * sets (`testbed/nat_lab/generate.ts`) loaded in one reused namespace pair,
 * SYNs from the client (PREROUTING) and from the node (OUTPUT), the
 * kernel's translation read from conntrack, and every answer judged by it
 * (`testbed/nat_lab/differential.ts`): "not proven" is always allowed,
 * "translated to T" only where the kernel translated into T.
 *
 * Seeds 1..500 run every time, then 30 from a random start that is printed
 * (replay one: `deno task test:nat-diff --seed N`; more: `--count`). The
 * answer function judged is `answerUnderTest` of
 * `testbed/nat_lab/answers.ts`. Two deliberately wrong answer functions
 * show that the harness catches a wrong evaluator.
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { answerUnderTest, fixedWrongAnswer, naiveAnswer } from "../../testbed/nat_lab/answers.ts";
import {
  formatDisagreement,
  formatStats,
  runDifferential,
} from "../../testbed/nat_lab/differential.ts";
import { withNatLab } from "../../testbed/nat_lab/lab.ts";
import { libnftablesProblem } from "../../testbed/nat_lab/nft_run.ts";

const options = {
  needs: ["iptables-nft-restore", "ip6tables-nft-restore"],
  skip: libnftablesProblem(),
};
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

kernelTest(
  "runDifferential on 530 random rule sets: the answer under test never claims a translation the kernel did not make",
  () =>
    withNatLab(async (lab) => {
      const start = 1_000_000 + Math.floor(Math.random() * 1_000_000_000);
      console.log(
        `random seeds ${start}..${start + 29} (replay: deno task test:nat-diff --seed N)`,
      );
      const stats = await runDifferential(
        lab,
        [...range(1, 500), ...range(start, 30)],
        answerUnderTest(lab),
      );
      console.log(formatStats(stats));
      assert.equal(stats.ruleSets, 530);
      assert.equal(stats.disagreeing, 0, stats.disagreements.map(formatDisagreement).join("\n\n"));
      // The generated rule sets do translate: the test is not vacuous.
      assert.ok(stats.kernelTranslated > stats.probes / 5, formatStats(stats));
    }),
  options,
);

kernelTest(
  "runDifferential reports every probe as a disagreement for an answer that always claims a target nobody uses",
  () =>
    withNatLab(async (lab) => {
      const stats = await runDifferential(lab, range(1, 20), fixedWrongAnswer(lab), {
        maxDisagreements: 1,
      });
      assert.equal(stats.disagreeing, stats.probes);
      assert.equal(stats.answeredTranslated, stats.probes);
      const text = formatDisagreement(stats.disagreements[0]!);
      assert.match(text, /replay: deno task test:nat-diff --seed 1\b/);
      assert.match(text, /192\.0\.2\.250|2001:db8:2::fa|192\.0\.2\.250/);
    }),
  options,
);

kernelTest(
  "runDifferential catches a careless evaluator (negations, jumps and marks ignored) while agreeing where it is right",
  () =>
    withNatLab(async (lab) => {
      const stats = await runDifferential(lab, range(1, 80), naiveAnswer(lab), {
        maxDisagreements: 3,
      });
      console.log(formatStats(stats));
      assert.ok(stats.disagreeing > 0, "the careless evaluator went unnoticed");
      assert.ok(
        stats.answeredTranslated - stats.disagreeing > stats.answeredTranslated / 4,
        `often right, as a real bug would be: ${formatStats(stats)}`,
      );
    }),
  options,
);

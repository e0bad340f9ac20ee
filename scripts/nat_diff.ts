/**
 * The NAT differential test at any length, or one case replayed in full.
 *
 *     deno task test:nat-diff                      # 2000 rule sets from a random seed
 *     deno task test:nat-diff --count 10000 --from 1
 *     deno task test:nat-diff --seed 123           # one case: rule set, probes, kernel, answers
 *     deno task test:nat-diff --answer naive       # judge another answer function
 *
 * Answer functions (`testbed/nat_lab/answers.ts`): `under-test` (default,
 * the one the kernel test judges), `naive` and `wrong` (deliberately wrong,
 * to see the harness bite). Needs root, `ip`, `nft`'s libnftables and
 * `iptables-nft-restore`; everything happens in two namespaces made for the
 * run and removed afterwards. Exit code 1 when any answer disagreed with
 * the kernel.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { answerUnderTest, fixedWrongAnswer, naiveAnswer } from "../testbed/nat_lab/answers.ts";
import {
  type AnswerFactory,
  formatDisagreement,
  formatStats,
  judge,
  runDifferential,
} from "../testbed/nat_lab/differential.ts";
import { describeCase } from "../testbed/nat_lab/generate.ts";
import { withNatLab } from "../testbed/nat_lab/lab.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string" },
    from: { type: "string" },
    count: { type: "string", default: "2000" },
    answer: { type: "string", default: "under-test" },
  },
});

const factories: Record<string, AnswerFactory> = {
  "under-test": answerUnderTest,
  naive: naiveAnswer,
  wrong: fixedWrongAnswer,
};
const factory = factories[values.answer];
if (factory === undefined) {
  console.error(`--answer must be one of ${Object.keys(factories).join(", ")}`);
  Deno.exit(2);
}

const code = await withNatLab(async (lab) => {
  const answer = factory(lab);
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    const stats = await runDifferential(lab, [seed], answer, {
      onCase: (c, obs, answers) => {
        console.log(describeCase(c));
        c.probes.forEach((p, i) => {
          const j = judge(p, answers[i]!, obs[i]!);
          const a = answers[i]!;
          console.log(
            `${p.hook} ${p.src}:${p.sport} -> ${p.dst}:${p.dport}${p.uid ? ` uid ${p.uid}` : ""}` +
              ` | kernel ${JSON.stringify(obs[i])} | answer ${a.kind}` +
              `${a.kind === "not_proven" ? ` (${a.reason})` : ""} | ${j.kind}` +
              `${j.kind === "disagree" ? `: ${j.why}` : ""}`,
          );
        });
      },
    });
    console.log(formatStats(stats));
    return stats.disagreeing === 0 ? 0 : 1;
  }
  const from = values.from !== undefined
    ? Number(values.from)
    : Math.floor(Math.random() * 2 ** 31);
  const count = Number(values.count);
  console.log(`seeds ${from}..${from + count - 1}, answer ${values.answer}`);
  const seeds = Array.from({ length: count }, (_, i) => from + i);
  const stats = await runDifferential(lab, seeds, answer, { maxDisagreements: 5 });
  for (const d of stats.disagreements) console.log(`${formatDisagreement(d)}\n`);
  console.log(formatStats(stats));
  return stats.disagreeing === 0 ? 0 : 1;
});
Deno.exit(code);

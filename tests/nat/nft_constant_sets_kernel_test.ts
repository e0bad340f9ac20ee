/**
 * Anonymous constant sets kept across generations, against the kernel: in a
 * namespace of its own (always removed) this file runs itself as a child
 * that holds one `NftRules` while the parent's script changes the rules with
 * `nft`: an unrelated change keeps the anonymous map (read from before), a
 * rule replaced with a new map and a table deleted and re-created with the
 * same names are read anew, and so is a rule replaced in place (same rule
 * handle), whatever handles and names the kernel reuses.
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { withNetns } from "../../testbed/netns.ts";
import { type Evaluate, NftRules } from "../../lib/nat/nft_reader.ts";
import type { NatQuestion } from "../../lib/nat/ruleset.ts";

const table = (targets: string) =>
  `table ip kc {
  chain a {
  }
  chain b {
  }
  chain c {
  }
  chain svc {
    numgen random mod 2 vmap { ${targets} }
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    jump svc
  }
}
`;

/** Each step: nft input, then the verdicts the child reads from svc's map. */
const STEPS = [
  table("0 : goto a, 1 : goto b"),
  "add chain ip kc d\n",
  // The same script again: the new table numbers its objects as the first did.
  `delete table ip kc\n${table("0 : goto c, 1 : goto a")}`,
  "flush chain ip kc svc\nadd rule ip kc svc numgen random mod 2 vmap { 0 : goto b, 1 : goto b }\n",
  "add chain ip kc e\n",
  // `replace rule` keeps the rule's handle; the new map may get a freed name back.
  "replace rule ip kc svc handle HANDLE numgen random mod 2 vmap { 0 : goto a, 1 : goto a }\n",
  "replace rule ip kc svc handle HANDLE numgen random mod 2 vmap { 0 : goto c, 1 : goto c }\n",
];

async function nft(args: string[], input = ""): Promise<string> {
  const p = new Deno.Command("nft", { args, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const r = await p.output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

/** Reads svc's map and answers with its elements as `key:chain`, sorted. */
const verdicts: Evaluate = (_q, view) => {
  const ref = { family: "ip" as const, table: "kc" };
  const svc = view.chain(ref, "svc");
  if (svc === undefined) return { kind: "need", chains: [{ ...ref, name: "svc" }], sets: [] };
  const lookup = svc.rules[0]?.exprs.find((e) => e.op === "lookup");
  if (lookup?.op !== "lookup") return { kind: "not_proven", reason: "no lookup" };
  const set = view.set(ref, lookup.set);
  if (set === undefined) return { kind: "need", chains: [], sets: [{ ...ref, name: lookup.set }] };
  const chains = set.elements.map((e) =>
    `${Math.max(...e.key)}:${e.verdict?.kind === "goto" ? e.verdict.chain : "?"}`
  );
  return { kind: "not_proven", reason: `${lookup.set} ${chains.sort().join(" ")}` };
};

async function child(): Promise<void> {
  const q: NatQuestion = {
    family: "ipv4",
    src: new Uint8Array([10, 0, 0, 1]),
    dst: new Uint8Array([10, 96, 0, 1]),
    sport: 40000,
    dport: 80,
    zone: 0,
    hook: "prerouting",
  };
  const rules = new NftRules({ evaluate: verdicts });
  const out = [];
  for (const step of STEPS) {
    const listing = await nft(["-a", "list", "chain", "ip", "kc", "svc"]).catch(() => "");
    const handle = /vmap .*# handle (\d+)/.exec(listing)?.[1] ?? "none";
    await nft(["-f", "-"], step.replace("HANDLE", handle));
    const [a] = await rules.answer([q]);
    out.push({
      answer: a?.kind === "not_proven" ? a.reason : JSON.stringify(a),
      reusedSets: rules.lastRead.reusedSets,
      generation: rules.lastRead.generation,
    });
  }
  rules.close();
  console.log(JSON.stringify(out));
}

kernelTest(
  "NftRules: an anonymous map is reused after an unrelated change, read anew when replaced",
  async () => {
    await withNetns("nft-const", async (ns) => {
      const r = await ns.exec([
        Deno.execPath(),
        "run",
        "-A",
        "--no-check",
        new URL(import.meta.url).pathname,
        "--child",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const steps = JSON.parse(r.stdout) as {
        answer: string;
        reusedSets: number;
        generation: number;
      }[];
      const answers = steps.map((s) => s.answer.replace(/^__map\d+ /, ""));
      assert.deepEqual(answers, [
        "0:a 1:b",
        "0:a 1:b",
        "0:c 1:a",
        "0:b 1:b",
        "0:b 1:b",
        "0:a 1:a",
        "0:c 1:c",
      ]);
      assert.deepEqual(steps.map((s) => s.reusedSets), [0, 1, 0, 0, 1, 0, 0]);
      const gens = steps.map((s) => s.generation);
      assert.ok(gens.every((g, i) => i === 0 || g > gens[i - 1]!), `${gens}`);
    });
  },
  { needs: ["nft"] },
);

if (import.meta.main && Deno.args.includes("--child")) await child();

/**
 * `deno task bench [NAME…] [-- ARGS]`: runs the named benchmarks, each in its
 * own process (they measure memory), or, with no name, the default set.
 * `deno task bench list` prints the names.
 *
 * @module
 */

/** Every benchmark by name: its script, and whether `deno task bench` alone runs it. */
export const BENCHES: Record<string, { script: string; what: string; byDefault: boolean }> = {
  idle: { script: "idle.ts", what: "the idle agent's footprint", byDefault: true },
  table: { script: "table.ts", what: "sources and deleters on large tables", byDefault: true },
  unnated: { script: "unnated.ts", what: "the un-NATed rule's evidence", byDefault: true },
  runtime: { script: "runtime.ts", what: "probes during reads, matching", byDefault: true },
  events: { script: "events.ts", what: "the events source", byDefault: true },
  churn: {
    script: "churn.ts",
    what: "CPU and RSS under new connections per second",
    byDefault: true,
  },
  kube: { script: "kube.ts", what: "the Kubernetes view's memory", byDefault: false },
  nat: { script: "nat.ts", what: "reading the NAT rules at 10,000 Services", byDefault: false },
  kubescale: { script: "kube_scale.ts", what: "the agent on a big cluster", byDefault: false },
};

async function main(args: string[]): Promise<number> {
  const dash = args.indexOf("--");
  const names = dash < 0 ? args : args.slice(0, dash);
  const rest = dash < 0 ? [] : args.slice(dash + 1);
  if (names[0] === "list") {
    for (const [n, b] of Object.entries(BENCHES)) console.log(`${n.padEnd(8)} ${b.what}`);
    return 0;
  }
  const chosen = names.length > 0
    ? names
    : Object.keys(BENCHES).filter((n) => BENCHES[n]!.byDefault);
  for (const n of chosen) {
    const b = BENCHES[n];
    if (b === undefined) {
      console.error(`bench: no benchmark ${n}; one of ${Object.keys(BENCHES).join(", ")}`);
      return 2;
    }
    const script = new URL(b.script, import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", script, ...rest] })
      .spawn().status;
    if (!r.success) return r.code || 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

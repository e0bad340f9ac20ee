/**
 * docs/reference.md's settings and metrics tables against the code, so they cannot
 * drift: the settings table against `lib/run/config.ts` (`OPTIONS`, and the
 * boolean flags `--help` lists and `loadConfig` accepts), the metrics table
 * against the families a real {@linkcode Metrics} registry exports.
 *
 * Both tables are plain markdown: one row per flag or metric family, each
 * value a code span, `—` for none. The standard `process_*` metrics may be
 * one row with a wildcard (`process_*`); the agent's own metrics must each
 * have a row of their own.
 *
 * @module
 */
import assert from "node:assert/strict";
import { helpText, loadConfig, OPTIONS } from "../lib/run/config.ts";
import { Metrics } from "../lib/serve/metrics.ts";
import { partMetrics } from "../lib/run/start.ts";

const REFERENCE = await Deno.readTextFile(new URL("../docs/reference.md", import.meta.url));

const SETTINGS_HEADER = ["Flag", "Environment", "Default", "Meaning"];
const METRICS_HEADER = ["Metric", "Type", "Labels", "Meaning"];
/** The cell that says "none". */
const NONE = "—";

/** A markdown table: its header cells and its rows of cells. */
interface Table {
  header: string[];
  rows: string[][];
}

/** Cells of one `| a | b |` line; `\|` inside a cell is a literal bar. */
function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "");
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replaceAll("\\|", "|"));
}

/** Every table in a markdown text: runs of `|` lines whose second line is the `---` rule. */
function tables(md: string): Table[] {
  const out: Table[] = [];
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.trimStart().startsWith("|")) continue;
    const start = i;
    while (i < lines.length && lines[i]!.trimStart().startsWith("|")) i++;
    const block = lines.slice(start, i);
    if (block.length < 2 || !/^\|[\s:|-]+\|$/.test(block[1]!.trim())) continue;
    out.push({ header: cells(block[0]!), rows: block.slice(2).map(cells) });
  }
  return out;
}

/** The one table with this header; a problem when there is none or more than one. */
function tableWith(md: string, header: string[], problems: string[]): Table | undefined {
  const found = tables(md).filter((t) => t.header.join("|") === header.join("|"));
  if (found.length !== 1) {
    problems.push(`expected one table headed | ${header.join(" | ")} |, found ${found.length}`);
    return undefined;
  }
  return found[0];
}

/** The code spans of a cell (`` `a`, `b` `` → a, b); `undefined` when it holds anything else. */
function codeSpans(cell: string): string[] | undefined {
  if (cell === NONE) return [];
  const spans = cell.split(", ");
  if (!spans.every((s) => /^`[^`]+`$/.test(s))) return undefined;
  return spans.map((s) => s.slice(1, -1));
}

/** The single code span of a cell, `NONE` for `—`, or `undefined`. */
function oneSpan(cell: string): string | undefined {
  if (cell === NONE) return NONE;
  const spans = codeSpans(cell);
  return spans?.length === 1 ? spans[0] : undefined;
}

/** One setting as the table should say it. */
interface SettingRow {
  env: string;
  default: string;
}

/** Boolean flags: listed by `--help`, not in `OPTIONS` (which hold the flags that take a value). */
function booleanFlags(): string[] {
  const valued = new Set(OPTIONS.map((o) => o.flag));
  const flags: string[] = [];
  for (const line of helpText().split("\n")) {
    if (!line.startsWith("  --")) continue;
    for (const token of line.trim().split(" ")) {
      if (!token.startsWith("--")) break;
      const name = token.replace(/,$/, "").replace(/=VALUE$|\[=true\|false\]$/, "").slice(2);
      if (!valued.has(name)) flags.push(name);
    }
  }
  return flags;
}

/** What the settings table must hold, by flag (`--interval`), from the code. */
function expectedSettings(): Map<string, SettingRow> {
  const out = new Map<string, SettingRow>();
  for (const o of OPTIONS) out.set(`--${o.flag}`, { env: o.env ?? NONE, default: o.default });
  for (const b of booleanFlags()) out.set(`--${b}`, { env: NONE, default: "off" });
  return out;
}

/** What the settings table of `md` holds, by flag, with problems of form. */
function referenceSettings(md: string, problems: string[]): Map<string, SettingRow> {
  const out = new Map<string, SettingRow>();
  const t = tableWith(md, SETTINGS_HEADER, problems);
  for (const row of t?.rows ?? []) {
    const [flag, env, def] = [oneSpan(row[0]!), oneSpan(row[1]!), oneSpan(row[2]!)];
    if (row.length !== 4 || !flag?.startsWith("--") || env === undefined || def === undefined) {
      problems.push(
        `settings row not of the form | \`--flag\` | \`ENV\` or — | \`default\` | …: ${
          row.join(" | ")
        }`,
      );
      continue;
    }
    if (out.has(flag)) problems.push(`settings: ${flag} has more than one row`);
    out.set(flag, { env, default: def });
  }
  return out;
}

/** Every difference between docs/reference.md's settings table and the code. */
function settingsProblems(md: string): string[] {
  const problems: string[] = [];
  const have = referenceSettings(md, problems);
  const want = expectedSettings();
  for (const [flag, w] of want) {
    const h = have.get(flag);
    if (h === undefined) {
      problems.push(`settings: ${flag} is missing`);
      continue;
    }
    if (h.env !== w.env) problems.push(`settings: ${flag} env is ${h.env}, the code says ${w.env}`);
    if (h.default !== w.default) {
      problems.push(`settings: ${flag} default is ${h.default}, the code says ${w.default}`);
    }
  }
  for (const flag of have.keys()) {
    if (!want.has(flag)) problems.push(`settings: ${flag} is not a flag of lib/run/config.ts`);
  }
  return problems;
}

/** One metric family: its type and label names (a histogram's `le` not included). */
interface Family {
  name: string;
  type: string;
  labels: string[];
}

/** The families a real registry exports, with or without the process metrics. */
function registryFamilies(processMetrics: boolean): Family[] {
  const m = new Metrics({
    version: "test",
    deno: Deno.version.deno,
    source: "procfs",
    deleter: "conntrack",
    processMetrics,
    parts: (r) => partMetrics(r),
  });
  return m.registry.families().map((f) => ({
    name: f.name,
    type: f.type,
    labels: [...f.labelNames].sort(),
  }));
}

/** A metric name, or a `prefix_*` pattern, as a predicate. */
function matcher(pattern: string): (name: string) => boolean {
  return pattern.endsWith("*")
    ? (name) => name.startsWith(pattern.slice(0, -1))
    : (name) => name === pattern;
}

/**
 * Every difference between docs/reference.md's metrics table and the registry:
 * `all` are the families `/metrics` serves, `own` the names of the agent's own
 * (those without the process metrics), which need a row each.
 */
function metricsProblems(md: string, all: readonly Family[], own: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const t = tableWith(md, METRICS_HEADER, problems);
  const exact = new Map<string, { type: string; labels: string[] }>();
  const wildcards: string[] = [];
  for (const row of t?.rows ?? []) {
    const [name, type, labels] = [oneSpan(row[0]!), row[1] ?? "", codeSpans(row[2]!)];
    if (row.length !== 4 || name === undefined || name === NONE || labels === undefined) {
      problems.push(
        `metrics row not of the form | \`name\` | type | \`label\`, … or — | …: ${row.join(" | ")}`,
      );
      continue;
    }
    if (name.endsWith("*")) {
      wildcards.push(name);
      const matched = all.filter((f) => matcher(name)(f.name));
      if (matched.length === 0) problems.push(`metrics: ${name} matches no exported family`);
      for (const f of matched.filter((f) => own.has(f.name))) {
        problems.push(`metrics: ${name} covers the agent's own ${f.name}, which needs its own row`);
      }
      continue;
    }
    if (exact.has(name)) problems.push(`metrics: ${name} has more than one row`);
    exact.set(name, { type, labels: [...labels].sort() });
  }
  const byName = new Map(all.map((f) => [f.name, f]));
  for (const [name, row] of exact) {
    const f = byName.get(name);
    if (f === undefined) {
      problems.push(`metrics: ${name} is not exported by lib/serve/metrics.ts`);
      continue;
    }
    if (row.type !== f.type) problems.push(`metrics: ${name} type is ${row.type}, it is ${f.type}`);
    if (row.labels.join(",") !== f.labels.join(",")) {
      problems.push(
        `metrics: ${name} labels are [${row.labels}], the registry's are [${f.labels}]`,
      );
    }
  }
  for (const f of all) {
    if (exact.has(f.name)) continue;
    if (own.has(f.name) || !wildcards.some((w) => matcher(w)(f.name))) {
      problems.push(`metrics: ${f.name} (${f.type}) is missing`);
    }
  }
  return problems;
}

const ALL = registryFamilies(true);
const OWN = new Set(registryFamilies(false).map((f) => f.name));

/** docs/reference.md with `from` replaced once by `to`; fails if `from` is not there. */
function edited(from: string | RegExp, to: string): string {
  const out = REFERENCE.replace(from, to);
  assert.notEqual(out, REFERENCE, `docs/reference.md holds ${from}`);
  return out;
}

/** docs/reference.md's table line that starts with this cell. */
function rowOf(firstCell: string): string {
  const line = REFERENCE.split("\n").find((l) => l.startsWith(`| ${firstCell} `));
  assert.ok(line !== undefined, `a row for ${firstCell}`);
  return line;
}

Deno.test("docs/reference.md settings table: every flag of lib/run/config.ts with its env var and default, and no other", () => {
  assert.deepEqual(settingsProblems(REFERENCE), []);
  // The boolean flags are real: found in --help, and taken by loadConfig without a value.
  const booleans = booleanFlags();
  assert.deepEqual([...booleans].sort(), ["help", "version"]);
  for (const b of booleans) {
    assert.notEqual(loadConfig([`--${b}`], () => undefined).kind, "error", `--${b}`);
    assert.equal(loadConfig([`--${b}=yes`], () => undefined).kind, "error", `--${b}=yes`);
  }
});

Deno.test("docs/reference.md settings table: each env var is the one loadConfig reads, and each default is accepted", () => {
  const problems: string[] = [];
  const rows = referenceSettings(REFERENCE, problems);
  assert.deepEqual(problems, []);
  for (const [flag, row] of rows) {
    if (row.env === NONE) continue;
    const r = loadConfig([], (name) => (name === row.env ? row.default : undefined));
    assert.equal(r.kind, "run", `${row.env}=${row.default}: ${JSON.stringify(r)}`);
    if (r.kind === "run") assert.equal(r.settings.origin[flag.slice(2)], "env", row.env);
  }
});

Deno.test("docs/reference.md settings table: a missing, extra or differing row is reported", () => {
  const cases: [string, string, RegExp][] = [
    ["row removed", edited(rowOf("`--log-level`") + "\n", ""), /--log-level is missing/],
    [
      "boolean removed",
      edited(rowOf("`--dry-run`") + "\n", ""),
      /--dry-run is missing/,
    ],
    [
      "extra row",
      edited(rowOf("`--log-level`"), rowOf("`--log-level`") + "\n| `--colour` | — | `off` | x |"),
      /--colour is not a flag/,
    ],
    [
      "default differs",
      edited(/(\| `--max-candidates` .*?)`20000`/, "$1`2000`"),
      /--max-candidates default is 2000/,
    ],
    [
      "env differs",
      edited("`CONNTRACK_CLEANER_LISTEN`", "`CONNTRACK_CLEANER_LISTEN_ADDR`"),
      /--listen env is CONNTRACK_CLEANER_LISTEN_ADDR/,
    ],
    [
      "env missing",
      edited(/(\| `--source` +\| )`CONNTRACK_CLEANER_SOURCE`/, "$1—"),
      /--source env is —/,
    ],
    [
      "env given to a flag without one",
      edited(/(\| `--help` +\| )—/, "$1`CONNTRACK_CLEANER_HELP`"),
      /--help env is CONNTRACK_CLEANER_HELP/,
    ],
    [
      "duplicated row",
      edited(rowOf("`--threshold`"), rowOf("`--threshold`") + "\n" + rowOf("`--threshold`")),
      /--threshold has more than one row/,
    ],
    ["table gone", edited("| Flag ", "| Option "), /expected one table headed \| Flag/],
  ];
  for (const [what, md, expected] of cases) {
    const problems = settingsProblems(md);
    assert.ok(problems.some((p) => expected.test(p)), `${what}: ${JSON.stringify(problems)}`);
  }
});

Deno.test("docs/reference.md metrics table: every family the real registry exports, with its type and labels, and no other", () => {
  assert.ok(OWN.size >= 16 && ALL.length > OWN.size, "process metrics come on top of the agent's");
  assert.deepEqual(metricsProblems(REFERENCE, ALL, OWN), []);
});

Deno.test("docs/reference.md metrics table: a missing, extra or differing row is reported", () => {
  const renewals = rowOf("`conntrack_cleaner_renewals_total`");
  const cases: [string, string, RegExp][] = [
    ["row removed", edited(renewals + "\n", ""), /renewals_total \(counter\) is missing/],
    [
      "extra row",
      edited(renewals, renewals + "\n| `conntrack_cleaner_flushes_total` | counter | — | x |"),
      /flushes_total is not exported/,
    ],
    [
      "type differs",
      edited(renewals, renewals.replace("counter", "gauge  ")),
      /renewals_total type is gauge, it is counter/,
    ],
    [
      "label missing",
      edited("`result`, `rule`", "`result`"),
      /deletions_total labels are \[result\], the registry's are \[result,rule\]/,
    ],
    [
      "label added",
      edited(renewals, renewals.replace("| —", "| `zone`")),
      /renewals_total labels are \[zone\]/,
    ],
    [
      "process metrics row removed",
      edited(rowOf("`process_cpu_seconds_total`") + "\n", ""),
      /process_cpu_seconds_total \(counter\) is missing/,
    ],

    [
      "a wildcard that hides the agent's own metrics",
      edited(renewals, "| `conntrack_cleaner_renewals*` | various | — | x |"),
      /renewals\* covers the agent's own conntrack_cleaner_renewals_total/,
    ],
    [
      "a wildcard that matches nothing",
      edited(renewals, renewals + "\n| `conntrack_cleaner_go_*` | various | — | x |"),
      /go_\* matches no exported family/,
    ],
    ["table gone", edited("| Metric ", "| Name "), /expected one table headed \| Metric/],
  ];
  for (const [what, md, expected] of cases) {
    const problems = metricsProblems(md, ALL, OWN);
    assert.ok(problems.some((p) => expected.test(p)), `${what}: ${JSON.stringify(problems)}`);
  }
});

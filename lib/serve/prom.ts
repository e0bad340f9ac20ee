/**
 * A small Prometheus registry: counters, gauges and histograms with fixed
 * label names, rendered in the text exposition format (version 0.0.4).
 * Written instead of prom-client, whose import alone cost about 14 MB of
 * resident memory at idle (Deno's Node compatibility layer plus the
 * package; docs/benchmarks.md, issue 14).
 *
 * @module
 */

/** Label values of one series, by label name. */
export type Labels = Readonly<Record<string, string>>;

/** What {@linkcode Registry.families} reports of one metric family. */
export interface FamilyInfo {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  /** Label names, a histogram's `le` not included. */
  labelNames: readonly string[];
  /** Label values of each series (a histogram: one entry per label set). */
  series: Labels[];
}

interface Family {
  info(): FamilyInfo;
  render(out: string[]): void;
}

/** A sample value as Prometheus spells it (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return Number.isNaN(v) ? "NaN" : String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(names: readonly string[], labels: Labels, extra = ""): string {
  const parts = names.map((n) => `${n}="${escapeLabel(labels[n] ?? "")}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** A counter or gauge: one value per label set. */
class Scalar implements Family {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
    readonly labelNames: readonly string[],
    readonly collect?: (self: Scalar) => void,
  ) {
    // A series without labels exists from the start, at 0.
    if (labelNames.length === 0) this.#values.set("", { labels: {}, value: 0 });
  }

  #entry(labels: Labels) {
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k)) throw new Error(`${this.name}: no label ${k}`);
    }
    const key = this.labelNames.map((n) => labels[n] ?? "").join("\0");
    let e = this.#values.get(key);
    if (!e) this.#values.set(key, e = { labels: { ...labels }, value: 0 });
    return e;
  }

  add(value: number, labels: Labels): void {
    if (this.type === "counter" && !(value >= 0)) {
      throw new Error(`${this.name}: a counter only goes up (${value})`);
    }
    this.#entry(labels).value += value;
  }

  set(value: number, labels: Labels): void {
    this.#entry(labels).value = value;
  }

  info(): FamilyInfo {
    this.collect?.(this);
    const { name, type, help, labelNames } = this;
    return {
      name,
      type,
      help,
      labelNames,
      series: [...this.#values.values()].map((e) => e.labels),
    };
  }

  render(out: string[]): void {
    this.collect?.(this);
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const { labels, value } of this.#values.values()) {
      out.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(value)}`);
    }
  }
}

/** A counter: {@linkcode Counter.inc} only. */
export class Counter {
  constructor(private readonly s: Scalar) {}
  /** Adds `value` (default 1, never negative) to the series `labels`. */
  inc(labels: Labels = {}, value = 1): void {
    this.s.add(value, labels);
  }
}

/** A gauge: {@linkcode Gauge.set}. */
export class Gauge {
  constructor(private readonly s: Scalar) {}
  /** Sets the series `labels` to `value`. */
  set(value: number, labels: Labels = {}): void {
    this.s.set(value, labels);
  }
}

/** A histogram without labels: cumulative buckets, sum and count. */
export class Histogram implements Family {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.#counts = buckets.map(() => 0);
  }

  /** Counts one observation. */
  observe(value: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  info(): FamilyInfo {
    const { name, help } = this;
    return { name, type: "histogram", help, labelNames: [], series: [{}] };
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`);
    this.buckets.forEach((le, i) => {
      out.push(`${this.name}_bucket{le="${formatValue(le)}"} ${this.#counts[i]}`);
    });
    out.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`);
    out.push(`${this.name}_sum ${formatValue(this.#sum)}`, `${this.name}_count ${this.#count}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * The families, in the order they were made, and their text rendering.
 *
 * @example
 * ```ts
 * import { Registry } from "./prom.ts";
 * const r = new Registry();
 * r.counter("jobs_total", "Jobs done.", ["result"]).inc({ result: "ok" });
 * r.metrics().split("\n")[2]; // => 'jobs_total{result="ok"} 1'
 * ```
 */
export class Registry {
  /** The Content-Type of {@linkcode Registry.metrics}' text. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #families = new Map<string, Family>();

  #add<T extends Family>(name: string, labelNames: readonly string[], f: T): T {
    if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}`);
    if (this.#families.has(name)) throw new Error(`metric ${name} registered twice`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l === "le") throw new Error(`${name}: bad label name ${l}`);
    }
    this.#families.set(name, f);
    return f;
  }

  /** A counter; `collect` runs before each read (to fold in a count kept elsewhere). */
  counter(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: (c: Counter) => void,
  ): Counter {
    const s = this.#add(
      name,
      labelNames,
      new Scalar(name, help, "counter", labelNames, collect && ((x) => collect(new Counter(x)))),
    );
    return new Counter(s);
  }

  /** A gauge; `collect` runs before each read (to set it from the outside world). */
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: (g: Gauge) => void,
  ): Gauge {
    const s = this.#add(
      name,
      labelNames,
      new Scalar(name, help, "gauge", labelNames, collect && ((x) => collect(new Gauge(x)))),
    );
    return new Gauge(s);
  }

  /** A histogram with these upper bounds (`+Inf` is added). */
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.#add(name, [], new Histogram(name, help, [...buckets].sort((a, b) => a - b)));
  }

  /** Every family: name, type, help, label names and the label sets it has series for. */
  families(): FamilyInfo[] {
    return [...this.#families.values()].map((f) => f.info());
  }

  /** The text exposition format, every family. */
  metrics(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) f.render(out);
    return out.join("\n") + "\n";
  }
}

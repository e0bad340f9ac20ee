/**
 * `deno task bench runtime`: figures for issue 14's runtime targets.
 *
 * 1. Probes during a big procfs read: `main.ts --source=procfs --dry-run` on
 *    a generated `--proc-file` of `--mb` MB (default 300; 1% candidates),
 *    `/healthz` asked every 50 ms on a new connection for `--seconds`
 *    (default 20): p50, p99 and max latency (target p99 ≤ 100 ms), and how
 *    many polls ran.
 * 2. `--destinations` matching: 9,164 items (CIDRs of every length, with and
 *    without ports, both families) × 20,000 candidate addresses, one poll's
 *    worth of `DestinationSet.match` (target ≤ 50 ms), next to the linear
 *    scan it replaced.
 *
 * Needs no kernel: the table is a file, the agent runs `--dry-run` (root is
 * needed only because main.ts checks the table is readable as the agent
 * would be).
 *
 *     deno task bench runtime [--only=probes|destinations] [--mb=300] [--seconds=20]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DestinationSet, parseDestinations } from "../../lib/model/destination_set.ts";
import type { Family } from "../../lib/model/tuple.ts";
import { parseIPv4, parseIPv6 } from "../../lib/model/addr.ts";
import { freePort } from "../../testbed/free_port.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

/** One table line, kernel format: 1 in 100 a candidate, the rest ESTABLISHED. */
function tableLine(i: number): string {
  const a = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  const sp = 1024 + (i % 60000);
  const t = (s: string, d: string, p: number, q: number) =>
    `src=${s} dst=${d} sport=${p} dport=${q} `;
  if (i % 100 === 0) {
    return `ipv4     2 tcp      6 117 SYN_SENT ${t(a(i), "10.127.0.1", sp, 443)}[UNREPLIED] ${
      t("10.127.0.1", a(i), 443, sp)
    }mark=0 zone=0 use=2\n`;
  }
  return `ipv4     2 tcp      6 431999 ESTABLISHED ${t(a(i), "10.127.0.1", sp, 443)}${
    t("10.127.0.1", a(i), 443, sp)
  }[ASSURED] mark=0 zone=0 use=2\n`;
}

async function writeTable(path: string, mb: number): Promise<number> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  let bytes = 0, i = 0;
  while (bytes < mb * 1e6) {
    const lines: string[] = [];
    for (let k = 0; k < 10_000; k++) lines.push(tableLine(i++));
    const chunk = enc.encode(lines.join(""));
    for (let off = 0; off < chunk.length;) off += await f.write(chunk.subarray(off));
    bytes += chunk.length;
  }
  return i;
}

async function healthz(port: number, timeoutMs: number): Promise<number | string> {
  const t0 = performance.now();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      await conn.write(
        new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      const buf = new Uint8Array(1024);
      const n = await conn.read(buf);
      const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      if (!head.startsWith("HTTP/1.1 200")) return head.split("\r\n")[0] || "closed";
      return performance.now() - t0;
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed at the timeout */ }
    }
  } catch (e) {
    return e instanceof Error ? e.name : String(e);
  }
}

async function benchProbes(mb: number, seconds: number): Promise<void> {
  const dir = await Deno.makeTempDir();
  const table = `${dir}/nf_conntrack`;
  try {
    const lines = await writeTable(table, mb);
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "--source=procfs",
        `--proc-file=${table}`,
        "--dry-run",
        "--interval=1s",
        "--log-level=debug",
        `--listen=127.0.0.1:${port}`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const out = new Response(child.stdout).text();
    try {
      const up = performance.now() + 60_000;
      while (typeof await healthz(port, 2000) !== "number") {
        if (performance.now() > up) throw new Error("the agent never answered /healthz");
        await new Promise((r) => setTimeout(r, 100));
      }
      const ms: number[] = [];
      const failed: string[] = [];
      const end = performance.now() + seconds * 1000;
      while (performance.now() < end) {
        const t0 = performance.now();
        const r = await healthz(port, 2000);
        if (typeof r === "number") ms.push(r);
        else failed.push(r);
        await new Promise((r) => setTimeout(r, Math.max(0, 50 - (performance.now() - t0))));
      }
      child.kill("SIGTERM");
      await child.status;
      const polls = ((await out).match(/"msg":"poll"|poll done|"snapshot"/g) ?? []).length;
      console.log(
        `\n## /healthz during procfs reads of a ${mb} MB table (${lines} lines), ` +
          `asked every 50 ms for ${seconds} s\n`,
      );
      console.log(
        `  ${ms.length} answers: p50 ${pct(ms, 50).toFixed(1)} ms, p99 ${
          pct(ms, 99).toFixed(1)
        } ms, max ${Math.max(...ms).toFixed(1)} ms; ${failed.length} failed ${
          failed.length ? `(${[...new Set(failed)].join(", ")})` : ""
        }`,
      );
      console.log(`  polls finished meanwhile: ${polls}`);
      console.log(
        `  target p99 ≤ 100 ms: ${pct(ms, 99) <= 100 && failed.length === 0 ? "met" : "NOT met"}`,
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A deterministic pseudo-random generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function v4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function v6(r: () => number): string {
  const g = Array.from({ length: 8 }, () => Math.floor(r() * 0x10000).toString(16));
  g[0] = "2001";
  g[1] = "db8";
  return g.join(":");
}

/** 9,164 items: IPv4 /8 to /32 and IPv6 /32 to /128, a third with a port, a third with a range. */
export function destinationItems(count: number, seed = 1): string[] {
  const r = rng(seed);
  const items: string[] = [];
  for (let i = 0; i < count; i++) {
    let cidr: string, v6item = false;
    if (i % 4 === 3) {
      const prefix = 32 + Math.floor(r() * 97);
      const groups = v6(r).split(":").map((x) => parseInt(x, 16));
      const bits = (k: number) => Math.min(16, Math.max(0, prefix - k * 16));
      const masked = groups.map((g, k) =>
        bits(k) === 0 ? 0 : g & ((0xffff << (16 - bits(k))) & 0xffff)
      );
      cidr = `${masked.map((g) => g.toString(16)).join(":")}/${prefix}`;
      v6item = true;
    } else {
      const prefix = 8 + Math.floor(r() * 25);
      const n = Math.floor(r() * 2 ** 32);
      const masked = prefix === 0 ? 0 : (n & (~0 << (32 - prefix))) >>> 0;
      cidr = `${v4(masked)}/${prefix}`;
    }
    const port = Math.floor(r() * 65000);
    const kind = i % 3;
    const ports = kind === 0 ? "" : kind === 1 ? `:${port}` : `:${port}-${port + 500}`;
    items.push(ports === "" ? cidr : v6item ? `[${cidr}]${ports}` : `${cidr}${ports}`);
  }
  return items;
}

function benchDestinations(): void {
  const items = destinationItems(9164);
  const set = parseDestinations(items.join(","));
  if (typeof set === "string") throw new Error(set);
  const r = rng(7);
  const candidates: [Family, string, number][] = [];
  for (let i = 0; i < 20_000; i++) {
    candidates.push(
      i % 4 === 3
        ? ["ipv6", v6(r), Math.floor(r() * 65536)]
        : ["ipv4", v4(Math.floor(r() * 2 ** 32)), Math.floor(r() * 65536)],
    );
  }
  const poll = (s: DestinationSet) => {
    let hits = 0;
    const t0 = performance.now();
    for (const [f, a, p] of candidates) if (s.match(f, a, p)) hits++;
    return { ms: performance.now() - t0, hits };
  };
  const runs = Array.from({ length: 11 }, () => poll(set));
  // The scan the index replaced: every item in order until one holds the address.
  const linear = {
    match(family: Family, addr: string, port: number) {
      const g = family === "ipv4"
        ? (() => {
          const o = parseIPv4(addr)!;
          return [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
        })()
        : parseIPv6(addr)!;
      return set.items.find((item) => {
        if (item.family !== family || port < item.portLow || port > item.portHigh) return false;
        return item.groups.every((n, i) => {
          const bits = Math.min(16, Math.max(0, item.prefix - i * 16));
          return bits === 0 || (g[i]! & ((0xffff << (16 - bits)) & 0xffff)) === n;
        });
      });
    },
  } as unknown as DestinationSet;
  const scan = Array.from({ length: 3 }, () => poll(linear));
  if (scan[0]!.hits !== runs[0]!.hits) throw new Error("the index and the scan disagree");
  console.log(
    `\n## --destinations matching: ${items.length} items × ${candidates.length} candidates per poll\n`,
  );
  console.log(
    `  indexed: median ${pct(runs.map((x) => x.ms), 50).toFixed(1)} ms per poll (first ${
      runs[0]!.ms.toFixed(1)
    } ms), ${runs[0]!.hits} matches`,
  );
  console.log(`  linear scan: median ${pct(scan.map((x) => x.ms), 50).toFixed(1)} ms per poll`);
  console.log(`  target ≤ 50 ms: ${pct(runs.map((x) => x.ms), 50) <= 50 ? "met" : "NOT met"}`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string" },
      mb: { type: "string", default: "300" },
      seconds: { type: "string", default: "20" },
    },
    strict: true,
  });
  console.log(`# conntrack-cleaner runtime benchmark (deno ${Deno.version.deno})`);
  if (!values.only || values.only === "destinations") benchDestinations();
  if (!values.only || values.only === "probes") {
    await benchProbes(Number(values.mb), Number(values.seconds));
  }
}

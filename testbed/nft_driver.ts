/**
 * Test driver for the nf_tables reader: runs inside a network namespace (as
 * `ip netns exec NS deno run -A testbed/nft_driver.ts '<json>'`, which
 * {@linkcode runNftDriver} does), reads the generation, the base chains at
 * the hooks asked and every chain and set reachable from them, and prints
 * one JSON object (byte arrays as hex strings). With `record: true` it also
 * prints every request and the datagrams the kernel answered with
 * ({@linkcode RecordingTransport}), for fixtures.
 *
 * @module
 */
import { NetlinkSocket, type NetlinkTransport } from "../lib/netlink/socket.ts";
import { NftFetcher } from "../lib/nat/nft_fetch.ts";
import type { NftChain, NftExpr, NftHook, NftSet, TableRef } from "../lib/nat/ruleset.ts";
import type { Netns } from "./netns.ts";

/** What the driver is asked. */
export interface NftDriverRequest {
  hooks: NftHook[];
  record?: boolean;
}

/** One request and the datagrams that answered it (base64). */
export interface Exchange {
  request: string;
  replies: string[];
}

/** What the driver prints. */
export interface NftDriverResult {
  generation: number;
  generationAfter: number;
  dormant: string[];
  chains: NftChain[];
  sets: NftSet[];
  exchanges?: Exchange[];
  error?: string;
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));

/** A transport that keeps a copy of every request and datagram. */
export class RecordingTransport implements NetlinkTransport {
  readonly exchanges: Exchange[] = [];
  #inner: NetlinkTransport;
  constructor(inner: NetlinkTransport) {
    this.#inner = inner;
  }
  get portId(): number {
    return this.#inner.portId;
  }
  send(data: Uint8Array): Promise<void> {
    this.exchanges.push({ request: b64(data), replies: [] });
    return this.#inner.send(data);
  }
  trySend(data: Uint8Array): boolean {
    const sent = this.#inner.trySend?.(data) ?? false;
    if (sent) this.exchanges.push({ request: b64(data), replies: [] });
    return sent;
  }
  async recv(buf: Uint8Array, timeoutMs: number): Promise<number | null> {
    const n = await this.#inner.recv(buf, timeoutMs);
    if (n !== null && n <= buf.length) this.exchanges.at(-1)?.replies.push(b64(buf.subarray(0, n)));
    return n;
  }
  tryRecv(buf: Uint8Array): number | null {
    const n = this.#inner.tryRecv(buf);
    if (n !== null && n <= buf.length) this.exchanges.at(-1)?.replies.push(b64(buf.subarray(0, n)));
    return n;
  }
  close(): void {
    this.#inner.close();
  }
}

/** Chains jumped to and sets looked up by `exprs`. */
function references(exprs: readonly NftExpr[]): { chains: string[]; sets: string[] } {
  const chains: string[] = [];
  const sets: string[] = [];
  for (const e of exprs) {
    if (e.op === "verdict" && (e.verdict.kind === "jump" || e.verdict.kind === "goto")) {
      chains.push(e.verdict.chain);
    }
    if (e.op === "lookup") sets.push(e.set);
  }
  return { chains, sets };
}

/** Reads everything reachable from the base chains at `hooks`. */
export async function readReachable(
  t: NetlinkTransport,
  hooks: NftHook[],
): Promise<Omit<NftDriverResult, "exchanges">> {
  const f = new NftFetcher(t);
  const generation = await f.generation();
  const dormant = [...await f.dormantTables()];
  const heads = await f.baseChains(new Set(hooks));
  const chains: NftChain[] = [];
  const sets: NftSet[] = [];
  const seen = new Set<string>();
  const queue: (TableRef & { name: string; kind: "chain" | "set" })[] = [];
  for (const h of heads) {
    seen.add(`chain ${h.family} ${h.table} ${h.name}`);
    const chain = await f.baseChain(h);
    chains.push(chain);
    for (const rule of chain.rules) {
      const r = references(rule.exprs);
      for (const name of r.chains) queue.push({ ...h, name, kind: "chain" });
      for (const name of r.sets) queue.push({ ...h, name, kind: "set" });
    }
  }
  while (queue.length > 0) {
    const q = queue.shift()!;
    const key = `${q.kind} ${q.family} ${q.table} ${q.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const ref = { family: q.family, table: q.table };
    if (q.kind === "set") {
      const set = await f.set(ref, q.name);
      sets.push(set);
      for (const e of set.elements) {
        const v = e.verdict;
        if (v?.kind === "jump" || v?.kind === "goto") {
          queue.push({ ...ref, name: v.chain, kind: "chain" });
        }
      }
      continue;
    }
    const chain = await f.chain(ref, q.name);
    chains.push(chain);
    for (const rule of chain.rules) {
      const r = references(rule.exprs);
      for (const name of r.chains) queue.push({ ...ref, name, kind: "chain" });
      for (const name of r.sets) queue.push({ ...ref, name, kind: "set" });
    }
  }
  const generationAfter = await f.generation();
  return { generation, generationAfter, dormant, chains, sets };
}

/** JSON with byte arrays as hex. */
export function toJson(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) =>
      x instanceof Uint8Array ? Array.from(x, (b) => b.toString(16).padStart(2, "0")).join("") : x,
  );
}

/** Runs the driver inside `ns` and returns what it printed (hex strings for bytes). */
export async function runNftDriver(ns: Netns, req: NftDriverRequest): Promise<NftDriverResult> {
  const r = await ns.exec([
    Deno.execPath(),
    "run",
    "-A",
    "--no-check",
    new URL(import.meta.url).pathname,
    JSON.stringify(req),
  ]);
  if (r.code !== 0) throw new Error(`nft driver exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as NftDriverResult;
}

if (import.meta.main) {
  const req = JSON.parse(Deno.args[0] ?? "{}") as NftDriverRequest;
  const sock = NetlinkSocket.open();
  const t = req.record ? new RecordingTransport(sock) : sock;
  try {
    const out: NftDriverResult = await readReachable(t, req.hooks ?? ["prerouting", "output"]);
    if (t instanceof RecordingTransport) out.exchanges = t.exchanges;
    console.log(toJson(out));
  } catch (e) {
    console.log(toJson({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }));
  } finally {
    sock.close();
  }
}

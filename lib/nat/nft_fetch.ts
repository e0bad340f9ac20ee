/**
 * Reads pieces of the nf_tables ruleset from the kernel, one request each,
 * decoding while the dump streams in: the generation id, the dormant tables,
 * the base chains at some hooks (every other chain is dropped as it
 * arrives), one chain with its rules, one set with its elements. Bounds on
 * bytes, rules and elements hold across one {@linkcode NftFetcher}; going
 * past one throws {@linkcode NftBoundsError}. A dump the kernel interrupts
 * (the ruleset changed under it) throws `DumpRetryError`.
 *
 * @example
 * ```ts ignore
 * // ignore: needs CAP_NET_ADMIN; reads this namespace's ruleset.
 * import { NftFetcher } from "./nft_fetch.ts";
 * import { NetlinkSocket } from "../netlink/socket.ts";
 * const sock = NetlinkSocket.open();
 * const f = new NftFetcher(sock);
 * console.log(await f.generation(), await f.baseChains(new Set(["prerouting"])));
 * sock.close();
 * ```
 *
 * @module
 */
import { MessageBuilder } from "../netlink/builder.ts";
import { DumpRetryError, runDump } from "../netlink/dump.ts";
import type { NetlinkMessage } from "../netlink/message.ts";
import type { NetlinkTransport } from "../netlink/socket.ts";
import { NftDecodeError } from "./nft_attrs.ts";
import {
  type ChainHeader,
  decodeChain,
  decodeGen,
  decodeRule,
  decodeSet,
  decodeSetElems,
  decodeSetHandle,
  decodeTable,
  intervalRanges,
  mayBeBaseChain,
  type RawElement,
} from "./nft_decode.ts";
import {
  appendChainDump,
  appendGetGen,
  appendGetSet,
  appendRuleDump,
  appendSetElemDump,
  appendTableDump,
  NFT_MSG_NEWCHAIN,
  NFT_MSG_NEWGEN,
  NFT_MSG_NEWRULE,
  NFT_MSG_NEWSET,
  NFT_MSG_NEWSETELEM,
  NFT_MSG_NEWTABLE,
  nftGet,
  nftMsgType,
} from "./nft_netlink.ts";
import type { ConstantSets } from "./nft_constant_sets.ts";
import { ELIDED, type Prefilter } from "./nft_prefilter.ts";
import type { NftChain, NftHook, NftRule, NftSet, TableRef } from "./ruleset.ts";

/**
 * Limits of one read. The defaults fit a 64 MB heap at 10,000 kube-proxy
 * Services (about 20,000 rules in KUBE-SERVICES in iptables mode, 10,000+
 * map elements in nftables mode) with room for the rest of the agent.
 */
export interface NftBounds {
  /** Netlink bytes received, all requests together. */
  readonly bytes: number;
  /** Rules held, all chains together. */
  readonly rules: number;
  /** Set elements held, all sets together. */
  readonly elements: number;
  /** Milliseconds one request may take. */
  readonly requestMs: number;
}

/** The bounds used unless told otherwise. */
export const DEFAULT_BOUNDS: NftBounds = {
  bytes: 48 << 20,
  rules: 60_000,
  elements: 100_000,
  requestMs: 5_000,
};

/**
 * A read went past one of its {@linkcode NftBounds}.
 *
 * @example
 * ```ts
 * import { NftBoundsError } from "./nft_fetch.ts";
 * new NftBoundsError("rules", 60000).message; // => "more than 60000 rules"
 * ```
 */
export class NftBoundsError extends Error {
  constructor(what: string, limit: number) {
    super(`more than ${limit} ${what}`);
    this.name = "NftBoundsError";
  }
}

/** A chain or set named by a rule that the kernel does not have. */
export class NftMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NftMissingError";
  }
}

/** One read's requests on one socket, with its bounds and totals. */
export class NftFetcher {
  #t: QueuedFirst;
  #bounds: NftBounds;
  #clock: () => number;
  #seq = (Date.now() & 0xffff) << 8;
  #buffer = new Uint8Array(64 << 10);
  #builder = new MessageBuilder(128);
  /** Totals so far. */
  bytes = 0;
  rules = 0;
  elements = 0;
  /** Rules read with only their leading comparisons (`nft_prefilter.ts`). */
  elided = 0;
  /** Sets whose elements were taken from `constants` instead of read. */
  reusedSets = 0;
  /** The batch's questions, for rules to stop decoding early; none: every rule whole. */
  prefilter: Prefilter | undefined;
  /** Anonymous constant sets kept across generations (`nft_constant_sets.ts`); none: all read. */
  constants: ConstantSets | undefined;
  /** Table handles by `family table`, from {@linkcode NftFetcher.dormantTables}. */
  readonly tableHandles = new Map<string, number>();

  constructor(
    t: NetlinkTransport,
    bounds: NftBounds = DEFAULT_BOUNDS,
    clock: () => number = () => performance.now(),
  ) {
    this.#t = new QueuedFirst(t);
    this.#bounds = bounds;
    this.#clock = clock;
  }

  #request(build: (b: MessageBuilder, seq: number) => void): { seq: number; bytes: Uint8Array } {
    const seq = (++this.#seq) >>> 0;
    this.#builder.reset();
    build(this.#builder, seq);
    return { seq, bytes: this.#builder.bytes() };
  }

  #count(n: number): void {
    this.bytes += n;
    if (this.bytes > this.#bounds.bytes) throw new NftBoundsError("bytes", this.#bounds.bytes);
  }

  async #get(build: (b: MessageBuilder, seq: number) => void): Promise<NetlinkMessage[]> {
    const r = this.#request(build);
    const now = this.#clock();
    const replies = await nftGet(
      this.#t,
      r.seq,
      r.bytes,
      this.#buffer,
      this.#clock,
      now + this.#bounds.requestMs,
    );
    for (const m of replies) this.#count(m.payload.length + 16);
    return replies;
  }

  async #dump(
    build: (b: MessageBuilder, seq: number) => void,
    onMessage: (m: NetlinkMessage) => void,
  ): Promise<void> {
    const r = this.#request(build);
    for (let attempt = 0;; attempt++) {
      try {
        await runDump(this.#t, r.seq, r.bytes, {
          clock: this.#clock,
          deadline: this.#clock() + this.#bounds.requestMs,
          pollIntervalMs: 100,
          buffer: this.#buffer,
          onMessage: (m) => {
            this.#count(m.payload.length + 16);
            onMessage(m);
          },
          onFramingError: (reason) => {
            throw new NftDecodeError(`netlink framing: ${reason}`);
          },
        });
        return;
      } catch (e) {
        // Only a datagram larger than the buffer is retried here (with a larger one);
        // anything else, an interrupted dump included, is the caller's to judge.
        if (!(e instanceof DumpRetryError) || e.needBytes === undefined || attempt > 0) throw e;
        this.#buffer = new Uint8Array(e.needBytes);
      }
    }
  }

  /** The ruleset's generation id (`NFT_MSG_GETGEN`). */
  async generation(): Promise<number> {
    const replies = await this.#get((b, seq) => appendGetGen(b, seq));
    const m = replies.find((r) => r.type === nftMsgType(NFT_MSG_NEWGEN));
    if (m === undefined) throw new NftDecodeError("GETGEN: no NEWGEN reply");
    return decodeGen(m);
  }

  /** Keys (`family table`) of the dormant tables, whose chains do not run. */
  async dormantTables(): Promise<Set<string>> {
    const dormant = new Set<string>();
    await this.#dump((b, seq) => appendTableDump(b, seq), (m) => {
      if (m.type !== nftMsgType(NFT_MSG_NEWTABLE)) return;
      const t = decodeTable(m);
      if (t?.dormant) dormant.add(`${t.family} ${t.table}`);
      if (t?.handle !== undefined) this.tableHandles.set(`${t.family} ${t.table}`, t.handle);
    });
    return dormant;
  }

  /** The base chains at `hooks` of ip/ip6/inet tables (headers only, no rules). */
  async baseChains(hooks: ReadonlySet<NftHook>): Promise<ChainHeader[]> {
    const out: ChainHeader[] = [];
    await this.#dump((b, seq) => appendChainDump(b, seq), (m) => {
      if (m.type !== nftMsgType(NFT_MSG_NEWCHAIN) || !mayBeBaseChain(m)) return;
      const c = decodeChain(m);
      if (c?.base !== undefined && hooks.has(c.base.hook)) out.push(c);
    });
    return out;
  }

  /**
   * One regular chain with its rules (one filtered rule dump), each decoded
   * only as far as {@linkcode NftFetcher.prefilter} needs. A chain that
   * does not exist reads as empty: within one generation a rule can only
   * jump to a chain that exists (the kernel checks at commit), so the
   * caller's generation check after the read covers it.
   */
  async chain(ref: TableRef, name: string): Promise<NftChain> {
    const rules: NftRule[] = [];
    await this.#dump((b, seq) => appendRuleDump(b, seq, ref, name), (m) => {
      if (m.type !== nftMsgType(NFT_MSG_NEWRULE)) return;
      const r = decodeRule(m, this.prefilter);
      if (r === undefined || r.chain !== name || r.table !== ref.table) {
        throw new NftDecodeError(`rule dump of ${name}: a rule of another chain`);
      }
      if (++this.rules > this.#bounds.rules) throw new NftBoundsError("rules", this.#bounds.rules);
      if (r.exprs.at(-1) === ELIDED) this.elided++;
      rules.push({ handle: r.handle, exprs: r.exprs });
    });
    return { family: ref.family, table: ref.table, name, rules };
  }

  /** A base chain (its header from {@linkcode baseChains}) with its rules. */
  async baseChain(head: ChainHeader): Promise<NftChain> {
    const c = await this.chain(head, head.name);
    return { ...head, rules: c.rules };
  }

  /** One set with its elements; {@linkcode NftMissingError} when it does not exist. */
  async set(ref: TableRef, name: string): Promise<NftSet> {
    let head: Omit<NftSet, "elements"> | undefined;
    let setHandle: number | undefined;
    try {
      const replies = await this.#get((b, seq) => appendGetSet(b, seq, ref, name));
      const m = replies.find((r) => r.type === nftMsgType(NFT_MSG_NEWSET));
      head = m === undefined ? undefined : decodeSet(m);
      setHandle = m === undefined ? undefined : decodeSetHandle(m);
    } catch (e) {
      if (isEnoent(e)) throw new NftMissingError(`set ${ref.family} ${ref.table} ${name}: none`);
      throw e;
    }
    if (head === undefined) throw new NftDecodeError(`GETSET ${name}: no set in the reply`);
    const tableHandle = this.tableHandles.get(`${ref.family} ${ref.table}`);
    const id = tableHandle === undefined || setHandle === undefined
      ? undefined
      : { tableHandle, setHandle };
    const kept = id === undefined ? undefined : this.constants?.get(id, head);
    if (kept !== undefined && sameHead(kept, head)) {
      this.elements += kept.elements.length;
      if (this.elements > this.#bounds.elements) {
        throw new NftBoundsError("set elements", this.#bounds.elements);
      }
      this.reusedSets++;
      return kept;
    }
    const raw: RawElement[] = [];
    await this.#dump((b, seq) => appendSetElemDump(b, seq, ref, name), (m) => {
      if (m.type !== nftMsgType(NFT_MSG_NEWSETELEM)) return;
      const before = raw.length;
      const got = decodeSetElems(m, raw);
      if (got !== name) throw new NftDecodeError(`element dump of ${name}: elements of ${got}`);
      this.elements += raw.length - before;
      if (this.elements > this.#bounds.elements) {
        throw new NftBoundsError("set elements", this.#bounds.elements);
      }
    });
    const set = { ...head, elements: intervalRanges(head.flags.interval, raw) };
    if (id !== undefined) this.constants?.put(id, set);
    return set;
  }
}

/**
 * nf_tables answers inside the `sendto` that asks and fills each further
 * part of a dump inside the `recv` that takes the previous one, so a reply
 * is almost always queued already: send with a synchronous `trySend` and
 * take replies with a synchronous `tryRecv` (no trip to a worker thread),
 * and wait only when nothing is there. One dump part is at most a few tens
 * of KiB of kernel work (32 KiB datagrams).
 */
class QueuedFirst implements NetlinkTransport {
  #t: NetlinkTransport;
  constructor(t: NetlinkTransport) {
    this.#t = t;
  }
  get portId(): number {
    return this.#t.portId;
  }
  send(data: Uint8Array): Promise<void> {
    return this.#t.trySend?.(data) ? Promise.resolve() : this.#t.send(data);
  }
  recv(buf: Uint8Array, timeoutMs: number): Promise<number | null> {
    const n = this.#t.tryRecv(buf);
    return n !== null ? Promise.resolve(n) : this.#t.recv(buf, timeoutMs);
  }
  tryRecv(buf: Uint8Array): number | null {
    return this.#t.tryRecv(buf);
  }
  close(): void {
    this.#t.close();
  }
}

/** The same description (a kept set is only reused when nothing in its header moved). */
function sameHead(a: Omit<NftSet, "elements">, b: Omit<NftSet, "elements">): boolean {
  return a.keyLen === b.keyLen && a.data === b.data &&
    JSON.stringify(a.flags) === JSON.stringify(b.flags) &&
    JSON.stringify(a.fieldLens) === JSON.stringify(b.fieldLens);
}

function isEnoent(e: unknown): boolean {
  return e instanceof Error && "errno" in e && (e as { errno: unknown }).errno === 2;
}

/**
 * List, then watch, one resource: keeps a bounded map of decoded objects in
 * step with the API, the way client-go's reflector does. A full list (all
 * pages) replaces the map at once; watch events after the list's
 * resourceVersion update it; bookmarks move the resourceVersion on; 410 Gone
 * (answer or ERROR event) is answered by a fresh list, at once the first
 * time, then after a back-off while 410s repeat without watch progress; any
 * other failure (a watch that ends without an event included) by a reconnect
 * after a back-off (1 s doubling to 30 s, reset once a watch makes progress:
 * an event or a bookmark). A list page over the API's byte limit halves the
 * page size. Bounds: objects (`maxItems`), their summed weight (`maxWeight`,
 * endpoints for slices), remembered keys of objects not kept
 * (`maxDropped`); each logged once when hit and counted in `overflow`.
 * Clock and sleep come in, so tests drive it without waiting.
 *
 * @module
 */
import { type Clock, errorText } from "../basics.ts";
import type { Logger } from "../log/logger.ts";
import { ApiError, type KubeApi } from "./api.ts";
import { type Decoded, objectKey, resourceVersionOf } from "./objects.ts";

/** Options for {@linkcode Reflector}. */
export interface ReflectorOptions<T> {
  api: KubeApi;
  /** Collection path, e.g. `/api/v1/services`. */
  path: string;
  /** What the objects are called in logs (`services`). */
  what: string;
  decode: (o: unknown) => Decoded<T>;
  /** Objects kept at most; the rest are counted in `overflow`, not kept. */
  maxItems: number;
  /** What an object weighs (endpoints of a slice); with `maxWeight`, a bound on the sum kept. */
  weight?: (v: T) => number;
  maxWeight?: number;
  /** Keys of objects not kept remembered at most (past that only counted); default 100,000. */
  maxDropped?: number;
  log: Logger;
  clock?: Clock;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Called after every change of the map (a list landed, an event applied). */
  onChange?: () => void;
  /** List page size; default 500. */
  pageSize?: number;
  /** Asked of the server per watch; default 240 s. */
  watchTimeoutS?: number;
  /** A watch without a byte for this long is dropped; default `watchTimeoutS` + 30 s. */
  watchIdleMs?: number;
  /** First back-off and its ceiling; default 1 s and 30 s. */
  backoffMs?: { first: number; max: number };
}

/** The reflector's state, for the view's freshness, metrics, logs and /readyz. */
export interface ReflectorState {
  /** A full list has landed (the map is a whole picture, possibly old). */
  synced: boolean;
  /** A watch stream is open now: changes arrive as they happen. */
  watching: boolean;
  /** Monotonic ms of the last answer from the API (list page, watch head, event). */
  lastContactAt: number | undefined;
  /**
   * Monotonic ms of the last progress: a full list landed, or an event or
   * bookmark arrived (a watch head alone, or an open but silent stream, is
   * contact, not progress).
   */
  progressAt: number | undefined;
  /** Objects beyond `maxItems` or `maxWeight` in the current picture, not kept. */
  overflow: number;
  /** Objects refused by `decode` so far. */
  refused: number;
  /** The last failure, until the API answers again. */
  lastError: string | undefined;
  /** Full lists made (the first, and each after 410 Gone). */
  lists: number;
}

/** Keys of objects not kept that are remembered, by default. */
export const MAX_DROPPED = 100_000;

/** See the module comment. */
export class Reflector<T> {
  readonly items = new Map<string, T>();
  readonly state: ReflectorState = {
    synced: false,
    watching: false,
    lastContactAt: undefined,
    progressAt: undefined,
    overflow: 0,
    refused: 0,
    lastError: undefined,
    lists: 0,
  };
  resourceVersion: string | undefined;
  #o: ReflectorOptions<T>;
  #clock: Clock;
  #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Keys seen but not kept (over the bounds), so their DELETED events keep the count right. */
  #dropped = new Set<string>();
  /** Objects dropped once `#dropped` was full: counted, not remembered (until the next list). */
  #untracked = 0;
  /** The sum of `weight` over the objects kept. */
  #weight = 0;
  /** Halved when a page is over the API's byte limit. */
  #pageSize: number;

  constructor(o: ReflectorOptions<T>) {
    this.#o = o;
    this.#pageSize = o.pageSize ?? 500;
    this.#clock = o.clock ?? (() => performance.now());
    this.#sleep = o.sleep ?? ((ms, signal) =>
      new Promise((r) => {
        const t = setTimeout(r, ms);
        signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
      }));
  }

  /** Lists and watches until `signal` aborts. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, what } = this.#o;
    const backoff = this.#o.backoffMs ?? { first: 1_000, max: 30_000 };
    const timeoutSeconds = this.#o.watchTimeoutS ?? 240;
    const idleMs = this.#o.watchIdleMs ?? (timeoutSeconds + 30) * 1000;
    let failures = 0;
    /** 410s in a row with no watch progress between: the first relists at once, the rest wait. */
    let gones = 0;
    const wait = (n: number) => Math.min(backoff.max, backoff.first * 2 ** Math.min(n - 1, 20));
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === undefined) await this.#list(signal);
        const events = await this.#o.api.watch(
          this.#o.path,
          { resourceVersion: this.resourceVersion!, timeoutSeconds, idleMs },
          signal,
        );
        this.#contact();
        this.state.watching = true;
        let moved = false;
        for await (const ev of events) {
          this.#contact();
          if (ev.type === "ERROR") throw new ApiError(ev.code, ev.reason, ev.message);
          // Progress: only now do the failure and 410 counts start again.
          this.state.progressAt = this.#clock();
          moved = true;
          failures = 0;
          gones = 0;
          const rv = resourceVersionOf(ev.object);
          if (ev.type !== "BOOKMARK") this.#apply(ev.type, ev.object);
          if (rv !== undefined) this.resourceVersion = rv;
        }
        // The server ended the watch (its timeout): watch again from where it was. Nothing is
        // missed meanwhile (the next watch starts at this resourceVersion). kube-apiserver sends a
        // bookmark before it ends a watch: a stream that ended with nothing is a failure (backed
        // off, not retried in a loop).
        if (!moved) throw new ApiError(0, "NoProgress", "the watch ended without an event");
      } catch (e) {
        this.state.watching = false;
        if (signal.aborted) break;
        if (e instanceof ApiError && e.gone) {
          gones++;
          const waitMs = gones === 1 ? 0 : wait(gones - 1);
          log.info(`${what}: resourceVersion too old (410 Gone); listing again`, {
            resource_version: this.resourceVersion,
            ...(waitMs > 0 ? { retry_in_ms: waitMs, gone_in_a_row: gones } : {}),
          });
          this.resourceVersion = undefined;
          if (waitMs > 0) await this.#sleep(waitMs, signal);
          continue;
        }
        if (e instanceof ApiError && e.reason === "TooLarge" && this.#pageSize > 1) {
          this.#pageSize = Math.max(1, this.#pageSize >> 1);
          log.warn(`${what}: a list page was too large; asking for smaller pages`, {
            error: errorText(e),
            page_size: this.#pageSize,
          });
        }
        failures++;
        const waitMs = wait(failures);
        const first = this.state.lastError === undefined;
        this.state.lastError = `${what}: ${errorText(e)}`;
        (first ? log.warn : log.debug)(`${what}: Kubernetes API call failed; will retry`, {
          error: errorText(e),
          retry_in_ms: waitMs,
          failures,
        });
        await this.#sleep(waitMs, signal);
      }
    }
  }

  #contact(): void {
    this.state.lastContactAt = this.#clock();
    if (this.state.lastError !== undefined) {
      this.#o.log.info(`${this.#o.what}: Kubernetes API answers again`);
      this.state.lastError = undefined;
    }
  }

  /** Every page, then the map replaced at once. */
  async #list(signal: AbortSignal): Promise<void> {
    const { api, path, decode } = this.#o;
    const next = new Map<string, T>();
    const drop = new Dropped(this.#o.maxDropped ?? MAX_DROPPED);
    let weight = 0;
    let refused = 0;
    let cont: string | undefined;
    let rv: string;
    // Each object decoded as it arrives, and only its record kept.
    const take = (o: unknown) => {
      const d = decode(o);
      if (!d.ok) {
        refused++;
        return;
      }
      const key = objectKey(o)!;
      const w = this.#weigh(d.value);
      if (next.size < this.#o.maxItems && weight + w <= this.#maxWeight) {
        next.set(key, d.value);
        weight += w;
      } else drop.add(key);
    };
    do {
      const page = await api.list(
        path,
        { limit: this.#pageSize, ...(cont ? { continue: cont } : {}) },
        signal,
        take,
      );
      this.#contact();
      rv = page.resourceVersion;
      cont = page.continue;
    } while (cont !== undefined);
    this.items.clear();
    for (const [k, v] of next) this.items.set(k, v);
    this.#weight = weight;
    this.#dropped = drop.keys;
    this.#untracked = drop.untracked;
    this.state.overflow = drop.count;
    this.state.refused += refused;
    this.state.synced = true;
    this.state.progressAt = this.#clock();
    this.state.lists++;
    this.resourceVersion = rv;
    if (drop.count > 0) {
      this.#o.log.warn(`${this.#o.what}: more objects than kept; the rest are ignored`, {
        kept: next.size,
        ignored: drop.count,
        weight,
        max_items: this.#o.maxItems,
        ...(this.#o.maxWeight !== undefined ? { max_weight: this.#o.maxWeight } : {}),
        ...(drop.untracked > 0 ? { ignored_not_remembered: drop.untracked } : {}),
      });
    }
    this.#o.onChange?.();
  }

  get #maxWeight(): number {
    return this.#o.maxWeight ?? Infinity;
  }

  #weigh(v: T): number {
    return this.#o.weight?.(v) ?? 0;
  }

  #apply(type: "ADDED" | "MODIFIED" | "DELETED", o: unknown): void {
    const key = objectKey(o);
    if (key === undefined) return;
    const old = this.items.get(key);
    if (type === "DELETED") {
      if (old !== undefined) this.#weight -= this.#weigh(old);
      this.items.delete(key);
      if (this.#dropped.delete(key)) this.#overflowChanged();
    } else {
      const d = this.#o.decode(o);
      if (!d.ok) {
        // Kept as it was: dropping it would read as "removed" to the stale-endpoint rule.
        this.state.refused++;
        this.#o.log.debug(`${this.#o.what}: object refused`, { problem: d.problem });
        return;
      }
      const base = this.#weight - (old === undefined ? 0 : this.#weigh(old));
      const w = this.#weigh(d.value);
      const fits = (old !== undefined || this.items.size < this.#o.maxItems) &&
        base + w <= this.#maxWeight;
      if (fits) {
        this.items.set(key, d.value);
        this.#weight = base + w;
      } else {
        // Not kept: an old version must not stand for it (its endpoints may be gone).
        if (old !== undefined) this.items.delete(key);
        this.#weight = base;
        if (!this.#dropped.has(key)) {
          if (this.#dropped.size < (this.#o.maxDropped ?? MAX_DROPPED)) this.#dropped.add(key);
          else this.#untracked++;
        }
        this.#overflowChanged();
      }
    }
    this.#o.onChange?.();
  }

  #overflowChanged(): void {
    const before = this.state.overflow;
    this.state.overflow = this.#dropped.size + this.#untracked;
    if (before === 0 && this.state.overflow > 0) {
      this.#o.log.warn(`${this.#o.what}: an object over the bounds is ignored`, {
        kept: this.items.size,
        weight: this.#weight,
      });
    }
  }
}

/** Objects dropped over the bounds during a list: keys up to a bound, then a count. */
class Dropped {
  readonly keys = new Set<string>();
  untracked = 0;
  constructor(readonly max: number) {}
  add(key: string): void {
    if (this.keys.size < this.max) this.keys.add(key);
    else this.untracked++;
  }
  get count(): number {
    return this.keys.size + this.untracked;
  }
}

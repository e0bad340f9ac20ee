/**
 * List, then watch, one resource: keeps a bounded map of decoded objects in
 * step with the API, the way client-go's reflector does. A full list (all
 * pages) replaces the map at once; watch events after the list's
 * resourceVersion update it; bookmarks move the resourceVersion on; 410 Gone
 * (answer or ERROR event) is answered by a fresh list; any other failure by a
 * reconnect after a back-off (1 s doubling to 30 s, reset once the API
 * answers). Clock and sleep come in, so tests drive it without waiting.
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
  /** Objects beyond `maxItems` in the current picture, not kept. */
  overflow: number;
  /** Objects refused by `decode` so far. */
  refused: number;
  /** The last failure, until the API answers again. */
  lastError: string | undefined;
  /** Full lists made (the first, and each after 410 Gone). */
  lists: number;
}

/** See the module comment. */
export class Reflector<T> {
  readonly items = new Map<string, T>();
  readonly state: ReflectorState = {
    synced: false,
    watching: false,
    lastContactAt: undefined,
    overflow: 0,
    refused: 0,
    lastError: undefined,
    lists: 0,
  };
  resourceVersion: string | undefined;
  #o: ReflectorOptions<T>;
  #clock: Clock;
  #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Keys seen but not kept (over the bound), so their DELETED events keep the count right. */
  #dropped = new Set<string>();

  constructor(o: ReflectorOptions<T>) {
    this.#o = o;
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
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === undefined) {
          await this.#list(signal);
          failures = 0;
        }
        const events = await this.#o.api.watch(
          this.#o.path,
          { resourceVersion: this.resourceVersion!, timeoutSeconds, idleMs },
          signal,
        );
        this.#contact();
        failures = 0;
        this.state.watching = true;
        for await (const ev of events) {
          this.#contact();
          if (ev.type === "ERROR") throw new ApiError(ev.code, ev.reason, ev.message);
          const rv = resourceVersionOf(ev.object);
          if (ev.type !== "BOOKMARK") this.#apply(ev.type, ev.object);
          if (rv !== undefined) this.resourceVersion = rv;
        }
        // The server ended the watch (its timeout): watch again from where it was. Nothing is
        // missed meanwhile (the next watch starts at this resourceVersion), so the view stays live
        // unless that fails.
      } catch (e) {
        this.state.watching = false;
        if (signal.aborted) break;
        if (e instanceof ApiError && e.gone) {
          log.info(`${what}: resourceVersion too old (410 Gone); listing again`, {
            resource_version: this.resourceVersion,
          });
          this.resourceVersion = undefined;
          continue;
        }
        failures++;
        const waitMs = Math.min(backoff.max, backoff.first * 2 ** Math.min(failures - 1, 20));
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
    const { api, path, decode, maxItems } = this.#o;
    const next = new Map<string, T>();
    const dropped = new Set<string>();
    let refused = 0;
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await api.list(
        path,
        { limit: this.#o.pageSize ?? 500, ...(cont ? { continue: cont } : {}) },
        signal,
      );
      this.#contact();
      for (const o of page.items) {
        const d = decode(o);
        if (!d.ok) {
          refused++;
          continue;
        }
        const key = objectKey(o)!;
        if (next.size < maxItems) next.set(key, d.value);
        else dropped.add(key);
      }
      rv = page.resourceVersion;
      cont = page.continue;
    } while (cont !== undefined);
    this.items.clear();
    for (const [k, v] of next) this.items.set(k, v);
    this.#dropped = dropped;
    this.state.overflow = dropped.size;
    this.state.refused += refused;
    this.state.synced = true;
    this.state.lists++;
    this.resourceVersion = rv;
    if (dropped.size > 0) {
      this.#o.log.warn(`${this.#o.what}: more objects than kept; the rest are ignored`, {
        kept: next.size,
        ignored: dropped.size,
      });
    }
    this.#o.onChange?.();
  }

  #apply(type: "ADDED" | "MODIFIED" | "DELETED", o: unknown): void {
    const key = objectKey(o);
    if (key === undefined) return;
    if (type === "DELETED") {
      this.items.delete(key);
      if (this.#dropped.delete(key)) this.state.overflow = this.#dropped.size;
    } else {
      const d = this.#o.decode(o);
      if (!d.ok) {
        // Kept as it was: dropping it would read as "removed" to the stale-endpoint rule.
        this.state.refused++;
        this.#o.log.debug(`${this.#o.what}: object refused`, { problem: d.problem });
        return;
      }
      if (this.items.has(key) || this.items.size < this.#o.maxItems) {
        this.items.set(key, d.value);
      } else if (!this.#dropped.has(key)) {
        this.#dropped.add(key);
        this.state.overflow = this.#dropped.size;
      }
    }
    this.#o.onChange?.();
  }
}

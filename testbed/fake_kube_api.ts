/**
 * A local fake of the Kubernetes API for the two collections the agent
 * watches (`/api/v1/services`, `/apis/discovery.k8s.io/v1/endpointslices`),
 * speaking the real protocol over HTTP or HTTPS on loopback:
 *
 * - lists with `metadata.resourceVersion`, pages by `limit` and `continue`;
 * - watches (`?watch=1&resourceVersion=RV`) as streams of JSON lines:
 *   ADDED / MODIFIED / DELETED after RV, BOOKMARK on request (when the client
 *   sent `allowWatchBookmarks=true`), and, for an RV older than the history
 *   kept, one ERROR event whose object is a `Status` with code 410, as
 *   kube-apiserver sends it;
 * - dropped connections ({@linkcode FakeKubeApi.dropWatches}), answers with
 *   an error status ({@linkcode FakeKubeApi.failNext}), and a bearer token
 *   check.
 *
 * Objects are fed as JSON in the real API's shapes; the fake sets their
 * `metadata.resourceVersion`. Run as a script (`deno run -A
 * testbed/fake_kube_api.ts [--tls-dir DIR]`), it prints `{"port":N}` and then
 * sends a BOOKMARK on each stream every second, and takes commands as JSON lines on stdin (`{"op":"set","resource":"services",
 * "object":{…}}`, `delete`, `bookmark`, `drop`), answering `{"ok":true}` to
 * each: that is how an end-to-end test runs it inside a network namespace.
 *
 * @example
 * ```ts
 * import { FakeKubeApi } from "./fake_kube_api.ts";
 * const api = new FakeKubeApi();
 * api.set("services", { metadata: { namespace: "web", name: "shop" }, spec: { clusterIP: "10.96.0.10" } });
 * const r = await fetch(`${api.url}/api/v1/services`);
 * (await r.json()).items.length; // => 1
 * await api.close();
 * ```
 *
 * @module
 */

/** The two collections. */
export type Resource = "services" | "endpointslices";

const PATHS: Record<string, Resource> = {
  "/api/v1/services": "services",
  "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
};
const KINDS: Record<Resource, { kind: string; apiVersion: string }> = {
  services: { kind: "Service", apiVersion: "v1" },
  endpointslices: { kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1" },
};

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
interface Event {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
}
interface Watcher {
  resource: Resource;
  bookmarks: boolean;
  push(line: string): void;
  /** Breaks the stream (the client sees an error). */
  drop(): void;
  /** Ends the stream as a server does at its timeout. */
  end(): void;
}

/** One request the fake answered, for assertions. */
export interface SeenRequest {
  path: string;
  query: Record<string, string>;
  authorization: string | null;
}

/** Options for {@linkcode FakeKubeApi}. */
export interface FakeKubeApiOptions {
  hostname?: string;
  port?: number;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** Require `Authorization: Bearer TOKEN`. */
  token?: string;
  /** Watch history kept per resource (older RVs get 410); default 1000. */
  history?: number;
  /**
   * Send a BOOKMARK to every watcher this often, as kube-apiserver does about
   * every minute on a quiet stream; default never (tests call `bookmark`).
   */
  bookmarkEveryMs?: number;
}

/** See the module comment. */
export class FakeKubeApi {
  readonly url: string;
  readonly port: number;
  readonly requests: SeenRequest[] = [];
  #server: Deno.HttpServer<Deno.NetAddr>;
  #rv = 100;
  #objects: Record<Resource, Map<string, Obj>> = { services: new Map(), endpointslices: new Map() };
  #history: Record<Resource, Event[]> = { services: [], endpointslices: [] };
  /** Watches from an RV below this get 410 Gone. */
  #oldest: Record<Resource, number> = { services: 0, endpointslices: 0 };
  #watchers = new Set<Watcher>();
  #failures: number[] = [];
  #o: FakeKubeApiOptions;
  #ticker: ReturnType<typeof setInterval> | undefined;

  constructor(o: FakeKubeApiOptions = {}) {
    this.#o = o;
    if (o.bookmarkEveryMs !== undefined) {
      this.#ticker = setInterval(() => {
        this.bookmark("services");
        this.bookmark("endpointslices");
      }, o.bookmarkEveryMs);
    }
    const hostname = o.hostname ?? "127.0.0.1";
    this.#server = Deno.serve({
      hostname,
      port: o.port ?? 0,
      onListen: () => {},
      ...(o.tls ? { cert: o.tls.cert, key: o.tls.key } : {}),
    }, (req) => this.#handle(req));
    this.port = this.#server.addr.port;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    this.url = `${o.tls ? "https" : "http"}://${host}:${this.port}`;
  }

  /** The current resourceVersion (the last change's). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Open watch streams. */
  get watching(): number {
    return this.#watchers.size;
  }

  /** Creates or replaces an object (by namespace/name): ADDED or MODIFIED to watchers. */
  set(resource: Resource, object: Record<string, unknown>): void {
    const o = structuredClone(object) as Obj;
    o.metadata = { ...(o.metadata ?? {}) };
    const key = `${o.metadata.namespace}/${o.metadata.name}`;
    const type = this.#objects[resource].has(key) ? "MODIFIED" : "ADDED";
    this.#record(resource, type, o);
    this.#objects[resource].set(key, o);
  }

  /** Deletes an object: DELETED to watchers. Returns whether it existed. */
  delete(resource: Resource, namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const o = this.#objects[resource].get(key);
    if (o === undefined) return false;
    this.#objects[resource].delete(key);
    this.#record(resource, "DELETED", structuredClone(o));
    return true;
  }

  /** Sends a BOOKMARK with the current RV to watchers of `resource` that allow bookmarks. */
  bookmark(resource: Resource): void {
    const line = JSON.stringify({
      type: "BOOKMARK",
      object: { ...KINDS[resource], metadata: { resourceVersion: String(this.#rv) } },
    });
    for (const w of this.#watchers) if (w.resource === resource && w.bookmarks) w.push(line);
  }

  /** Forgets the watch history: a watch from any RV before now gets 410 Gone. */
  compact(resource: Resource): void {
    this.#history[resource] = [];
    this.#oldest[resource] = this.#rv + 1;
  }

  /** Breaks every open watch stream (of `resource`, or all) mid-stream. */
  dropWatches(resource?: Resource): void {
    for (const w of [...this.#watchers]) {
      if (resource === undefined || w.resource === resource) {
        w.drop();
      }
    }
  }

  /** Ends every open watch stream cleanly, as the server does at `timeoutSeconds`. */
  endWatches(): void {
    for (const w of [...this.#watchers]) w.end();
  }

  /** The next `n` requests are answered with `status` (a Status body). */
  failNext(n: number, status = 503): void {
    for (let i = 0; i < n; i++) this.#failures.push(status);
  }

  async close(): Promise<void> {
    clearInterval(this.#ticker);
    for (const w of [...this.#watchers]) w.end();
    await this.#server.shutdown();
  }

  #record(resource: Resource, type: Event["type"], o: Obj): void {
    const rv = ++this.#rv;
    o.metadata.resourceVersion = String(rv);
    const ev: Event = { rv, type, object: { ...KINDS[resource], ...o } };
    const h = this.#history[resource];
    h.push(ev);
    const max = this.#o.history ?? 1000;
    if (h.length > max) this.#oldest[resource] = h.splice(0, h.length - max).at(-1)!.rv + 1;
    const line = JSON.stringify({ type, object: ev.object });
    for (const w of this.#watchers) if (w.resource === resource) w.push(line);
  }

  #status(code: number, reason: string, message: string): Response {
    return Response.json(
      { kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message },
      { status: code },
    );
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({
      path: url.pathname,
      query,
      authorization: req.headers.get("authorization"),
    });
    const fail = this.#failures.shift();
    if (fail !== undefined) return this.#status(fail, "ServiceUnavailable", "planned failure");
    if (this.#o.token && req.headers.get("authorization") !== `Bearer ${this.#o.token}`) {
      return this.#status(401, "Unauthorized", "Unauthorized");
    }
    const resource = PATHS[url.pathname];
    if (resource === undefined) return this.#status(404, "NotFound", `${url.pathname} not found`);
    if (query.watch === "1" || query.watch === "true") return this.#watch(resource, query);
    return this.#list(resource, query);
  }

  #list(resource: Resource, q: Record<string, string>): Response {
    const all = [...this.#objects[resource].values()].sort((a, b) =>
      `${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}`
        ? -1
        : 1
    );
    let offset = 0;
    let rv = this.#rv;
    if (q.continue) {
      const [o, r] = atob(q.continue).split(":").map(Number);
      if (r! < this.#oldest[resource]) {
        return this.#status(410, "Expired", "The provided continue parameter is too old");
      }
      offset = o!;
      rv = r!;
    }
    const limit = q.limit ? Number(q.limit) : all.length;
    const items = all.slice(offset, offset + limit).map((o) => {
      const { kind: _k, apiVersion: _a, ...rest } = o as Record<string, unknown>;
      return rest;
    });
    const more = offset + limit < all.length;
    return Response.json({
      kind: `${KINDS[resource].kind}List`,
      apiVersion: KINDS[resource].apiVersion,
      metadata: {
        resourceVersion: String(rv),
        ...(more ? { continue: btoa(`${offset + limit}:${rv}`) } : {}),
      },
      items,
    });
  }

  #watch(resource: Resource, q: Record<string, string>): Response {
    const from = Number(q.resourceVersion ?? "0");
    const enc = new TextEncoder();
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const watcher: Watcher = {
      resource,
      bookmarks: q.allowWatchBookmarks === "true",
      push: (line) => {
        try {
          ctl.enqueue(enc.encode(line + "\n"));
        } catch { /* closed */ }
      },
      end: () => {
        this.#watchers.delete(watcher);
        try {
          ctl.close();
        } catch { /* closed */ }
      },
      drop: () => {
        this.#watchers.delete(watcher);
        try {
          ctl.error(new Error("dropped by the fake API server"));
        } catch { /* closed */ }
      },
    };
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        ctl = c;
        if (from < this.#oldest[resource] - 1) {
          // As kube-apiserver does: 200, then one ERROR event with a 410 Status, then the end.
          c.enqueue(enc.encode(
            JSON.stringify({
              type: "ERROR",
              object: {
                kind: "Status",
                apiVersion: "v1",
                status: "Failure",
                message: `too old resource version: ${from} (${this.#oldest[resource] - 1})`,
                reason: "Expired",
                code: 410,
              },
            }) + "\n",
          ));
          c.close();
          return;
        }
        for (const ev of this.#history[resource]) {
          if (ev.rv > from) {
            c.enqueue(enc.encode(JSON.stringify({ type: ev.type, object: ev.object }) + "\n"));
          }
        }
        this.#watchers.add(watcher);
        const seconds = Number(q.timeoutSeconds ?? "0");
        if (seconds > 0) {
          setTimeout(() => {
            if (!this.#watchers.delete(watcher)) return;
            try {
              c.close();
            } catch { /* closed */ }
          }, seconds * 1000);
        }
      },
      cancel: () => {
        this.#watchers.delete(watcher);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }
}

async function serveCommands(): Promise<void> {
  const i = Deno.args.indexOf("--tls-dir");
  const tlsDir = i >= 0 ? Deno.args[i + 1] : undefined;
  // A bookmark a second on each stream: the agent's view stays live, removals get confirmed.
  const api = new FakeKubeApi({
    bookmarkEveryMs: 1000,
    ...(tlsDir
      ? {
        tls: {
          cert: await Deno.readTextFile(`${tlsDir}/server.crt`),
          key: await Deno.readTextFile(`${tlsDir}/server.key`),
        },
      }
      : {}),
  });
  const out = (o: unknown) => console.log(JSON.stringify(o));
  out({ port: api.port, url: api.url });
  const decoder = new TextDecoderStream();
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(decoder)) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === "") continue;
      const c = JSON.parse(line);
      if (c.op === "set") api.set(c.resource, c.object);
      else if (c.op === "delete") api.delete(c.resource, c.namespace, c.name);
      else if (c.op === "bookmark") api.bookmark(c.resource);
      else if (c.op === "drop") api.dropWatches(c.resource);
      out({ ok: true, watching: api.watching });
    }
  }
  await api.close();
}

if (import.meta.main) await serveCommands();

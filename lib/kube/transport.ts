/**
 * How the agent's requests reach the API, as client-go's do, with what Deno
 * offers:
 *
 * - **Only the configured CA.** When the credentials name a CA, Deno's
 *   default roots are emptied before the first TLS connection (the root
 *   store is built once, on first use, from `DENO_TLS_CA_STORE=system` and
 *   `SSL_CERT_FILE`: here `/dev/null`), so the server must present a chain to
 *   that CA: a certificate from a public CA for the same name is refused. With
 *   no CA configured, the system roots (as client-go). `DENO_CERT`, when an
 *   operator sets it, still adds its file.
 * - **The in-cluster CA file is read again** before each request, and the
 *   client made anew when it changed (CA rotation needs no restart).
 * - **Proxies are ignored.** `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
 *   `NO_PROXY` (either case) are removed from the agent's environment before
 *   the client is made (Deno's fetch would otherwise take them, with rules
 *   that differ from client-go's: a loopback API server would be proxied).
 *   Why not honour them: the agent runs on every node with `hostNetwork` and
 *   reaches the API as the node does; a proxy meant for egress would sit in
 *   the middle of long watches the agent's safety rests on (its idle and
 *   buffering rules would make a live view lag), for no gain.
 * - **Bodies are read with a cap** ({@linkcode readCapped}): a list page or an
 *   error answer is never read whole when it is larger than its limit.
 *
 * @module
 */
import type { ClusterAccess } from "./access.ts";

/** The variables a fetch client takes a proxy from. */
export const PROXY_VARIABLES = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "NO_PROXY",
  "no_proxy",
] as const;

/** What {@linkcode isolate} changes (tests pass a map). */
export interface EnvLike {
  get(name: string): string | undefined;
  set(name: string, value: string): void;
  delete(name: string): void;
}

/**
 * Removes the proxy variables and, when `onlyConfiguredCa`, empties the
 * default trust roots (see the module comment). Returns the proxy variables
 * that were set (for a log line).
 *
 * @example
 * ```ts
 * import { isolate } from "./transport.ts";
 * const vars = new Map([["HTTPS_PROXY", "http://proxy:3128"], ["HOME", "/root"]]);
 * const env = { get: (n: string) => vars.get(n), set: (n: string, v: string) => void vars.set(n, v), delete: (n: string) => void vars.delete(n) };
 * isolate(env, true); // => ["HTTPS_PROXY"]
 * [vars.has("HTTPS_PROXY"), vars.get("SSL_CERT_FILE")]; // => [false, "/dev/null"]
 * ```
 */
export function isolate(env: EnvLike, onlyConfiguredCa: boolean): string[] {
  const removed = PROXY_VARIABLES.filter((n) => env.get(n) !== undefined);
  for (const n of removed) env.delete(n);
  if (onlyConfiguredCa) {
    env.set("DENO_TLS_CA_STORE", "system");
    env.set("SSL_CERT_FILE", "/dev/null");
    env.delete("SSL_CERT_DIR");
  }
  return removed;
}

/**
 * The HTTP client for one {@linkcode ClusterAccess}: made once, and again
 * when the CA file (`access.caFile`) changed.
 */
export class KubeTransport {
  #access: ClusterAccess;
  #readTextFile: (p: string) => Promise<string>;
  #pem: string | undefined;
  #client: Deno.HttpClient | undefined;
  /** The client before the last CA change: its watch may still be open; closed at the next. */
  #previous: Deno.HttpClient | undefined;
  /** Proxy variables found set (and removed). */
  readonly proxiesIgnored: string[];

  constructor(
    access: ClusterAccess,
    o: { readTextFile?: (p: string) => Promise<string>; env?: EnvLike } = {},
  ) {
    this.#access = access;
    this.#readTextFile = o.readTextFile ?? Deno.readTextFile;
    this.proxiesIgnored = isolate(o.env ?? Deno.env, access.caPem !== undefined);
    this.#pem = access.caPem;
    this.#client = this.#make();
  }

  /** The client to use now (the CA file read again first). */
  async client(): Promise<Deno.HttpClient> {
    const file = this.#access.caFile;
    if (file !== undefined) {
      let pem: string | undefined;
      try {
        pem = await this.#readTextFile(file);
      } catch { /* a CA file being replaced: keep the last one */ }
      if (pem !== undefined && pem !== this.#pem) {
        this.#pem = pem;
        this.#previous?.close();
        this.#previous = this.#client;
        this.#client = this.#make();
      }
    }
    return this.#client!;
  }

  /** How many times the client was made (1 + CA changes), for tests and logs. */
  made = 0;

  close(): void {
    this.#previous?.close();
    this.#client?.close();
  }

  #make(): Deno.HttpClient {
    this.made++;
    const a = this.#access;
    return Deno.createHttpClient({
      ...(this.#pem !== undefined ? { caCerts: [this.#pem] } : {}),
      ...(a.certPem !== undefined && a.keyPem !== undefined
        ? { cert: a.certPem, key: a.keyPem }
        : {}),
    });
  }
}

/**
 * The bytes of `body`, or `undefined` once more than `max` arrived (the rest
 * is not read: the stream is cancelled).
 */
export async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array | undefined> {
  if (body === null) return new Uint8Array();
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

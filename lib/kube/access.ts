/**
 * How to reach the Kubernetes API: in-cluster credentials (the pod's
 * ServiceAccount), or a kubeconfig file's current context. What is
 * supported: server URL, CA (file or data), bearer token (inline or file),
 * client certificate and key (file or data). Anything else a kubeconfig may
 * ask for (exec plugins, auth providers, basic auth, skipping TLS checks,
 * proxies, impersonation, credentials in the server URL) is refused with a
 * message naming it, rather than silently talking to the API some other way.
 * A plain `http://` server is accepted on loopback only without a word
 * ({@linkcode plainHttpWarning}).
 *
 * @module
 */
import { errorText } from "../basics.ts";

/** Where the ServiceAccount's files are mounted in a pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Everything needed to talk to the API. */
export interface ClusterAccess {
  /** `https://host:port` (or `http://` for a kubeconfig that says so). */
  server: string;
  /** PEM of the CA that signed the server's certificate; absent: system roots. */
  caPem?: string;
  /** The file `caPem` came from, read again before each request (in-cluster `ca.crt`). */
  caFile?: string;
  /** A bearer token that does not change. */
  token?: string;
  /** A file holding the bearer token, read again before each request (tokens rotate). */
  tokenFile?: string;
  /** Client certificate and key, PEM. */
  certPem?: string;
  keyPem?: string;
  /** For the start-up log: `in-cluster` or `kubeconfig FILE (context NAME)`. */
  origin: string;
}

/** Thrown when credentials exist but cannot be used; the message says why. */
export class AccessError extends Error {
  override name = "AccessError";
}

/** What {@linkcode resolveAccess} may read. */
export interface AccessEnvironment {
  env: (name: string) => string | undefined;
  readTextFile: (path: string) => Promise<string>;
  exists: (path: string) => Promise<boolean>;
}

/** The real environment. */
export const REAL_ENVIRONMENT: AccessEnvironment = {
  env: (n) => Deno.env.get(n),
  readTextFile: (p) => Deno.readTextFile(p),
  exists: async (p) => {
    try {
      await Deno.stat(p);
      return true;
    } catch {
      return false;
    }
  },
};

/**
 * Picks the credentials for `--kubernetes=auto`: an explicit `--kubeconfig`
 * first (the operator asked for it), then in-cluster credentials when the pod
 * has them, then `KUBECONFIG`; `undefined` when there is none (Kubernetes off).
 * Rejects with {@linkcode AccessError} when the chosen credentials are unusable.
 */
export async function resolveAccess(
  kubeconfig: string | undefined,
  e: AccessEnvironment = REAL_ENVIRONMENT,
): Promise<ClusterAccess | undefined> {
  if (kubeconfig !== undefined) return await fromKubeconfig(kubeconfig, e);
  const inCluster = await fromInCluster(e);
  if (inCluster) return inCluster;
  const fromEnv = e.env("KUBECONFIG");
  if (fromEnv) {
    // kubectl merges a list; the agent takes the first file and says so if there are more.
    const first = fromEnv.split(":").find((p) => p !== "");
    if (first) return await fromKubeconfig(first, e);
  }
  return undefined;
}

/** In-cluster credentials, when `KUBERNETES_SERVICE_HOST`/`PORT` and the token file are there. */
export async function fromInCluster(e: AccessEnvironment): Promise<ClusterAccess | undefined> {
  const host = e.env("KUBERNETES_SERVICE_HOST");
  const port = e.env("KUBERNETES_SERVICE_PORT");
  const tokenFile = `${SERVICE_ACCOUNT_DIR}/token`;
  if (!host || !port || !(await e.exists(tokenFile))) return undefined;
  if (!/^[0-9]{1,5}$/.test(port)) {
    throw new AccessError(`in-cluster: KUBERNETES_SERVICE_PORT ${JSON.stringify(port)} is no port`);
  }
  const caFile = `${SERVICE_ACCOUNT_DIR}/ca.crt`;
  let caPem: string;
  try {
    caPem = await e.readTextFile(caFile);
  } catch (err) {
    throw new AccessError(`in-cluster: cannot read ${caFile}: ${errorText(err)}`);
  }
  const h = host.includes(":") ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, caPem, caFile, tokenFile, origin: "in-cluster" };
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Keys of a kubeconfig cluster or user the agent understands. */
const CLUSTER_KEYS = new Set([
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "extensions",
]);
const USER_KEYS = new Set([
  "token",
  "tokenFile",
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "extensions",
]);

/**
 * The current context of a kubeconfig file → {@linkcode ClusterAccess}.
 * Relative file paths in it are taken relative to the file, as kubectl does.
 */
export async function fromKubeconfig(path: string, e: AccessEnvironment): Promise<ClusterAccess> {
  let text: string;
  try {
    text = await e.readTextFile(path);
  } catch (err) {
    throw new AccessError(`kubeconfig ${path}: cannot read: ${errorText(err)}`);
  }
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
  const rel = (p: string) => (p.startsWith("/") ? p : dir + p);
  const read = async (what: string, p: string) => {
    try {
      return await e.readTextFile(rel(p));
    } catch (err) {
      throw new AccessError(`kubeconfig ${path}: cannot read ${what} ${rel(p)}: ${errorText(err)}`);
    }
  };
  const cfg = await parseKubeconfig(text, path);
  const c = cfg.cluster;
  const u = cfg.user;
  const access: ClusterAccess = {
    server: c.server,
    origin: `kubeconfig ${path} (context ${cfg.context})`,
  };
  if (typeof c["certificate-authority-data"] === "string") {
    access.caPem = decodeData(c["certificate-authority-data"], "certificate-authority-data", path);
  } else if (typeof c["certificate-authority"] === "string") {
    access.caPem = await read("certificate-authority", c["certificate-authority"]);
  }
  if (typeof u.token === "string") access.token = u.token;
  else if (typeof u.tokenFile === "string") access.tokenFile = rel(u.tokenFile);
  if (typeof u["client-certificate-data"] === "string") {
    access.certPem = decodeData(u["client-certificate-data"], "client-certificate-data", path);
  } else if (typeof u["client-certificate"] === "string") {
    access.certPem = await read("client-certificate", u["client-certificate"]);
  }
  if (typeof u["client-key-data"] === "string") {
    access.keyPem = decodeData(u["client-key-data"], "client-key-data", path);
  } else if (typeof u["client-key"] === "string") {
    access.keyPem = await read("client-key", u["client-key"]);
  }
  if ((access.certPem === undefined) !== (access.keyPem === undefined)) {
    throw new AccessError(`kubeconfig ${path}: a client certificate needs its key, and back`);
  }
  return access;
}

/**
 * A kubeconfig text → the current context's cluster and user, checked: only
 * the keys listed in this module are accepted. The `yaml` package is loaded
 * here, on first use: in-cluster credentials need no YAML, and an agent
 * without a kubeconfig does not carry it (it brings Deno's Node layer, about
 * 10 MB resident; docs/benchmarks.md).
 *
 * @example
 * ```ts
 * import { parseKubeconfig } from "./access.ts";
 * const text = `
 * current-context: dev
 * contexts: [{ name: dev, context: { cluster: c1, user: u1 } }]
 * clusters: [{ name: c1, cluster: { server: "https://127.0.0.1:6443" } }]
 * users: [{ name: u1, user: { exec: { command: aws } } }]
 * `;
 * let message = "";
 * try { await parseKubeconfig(text, "k.yaml"); } catch (e) { message = (e as Error).message; }
 * message;
 * // => 'kubeconfig k.yaml: user "u1" uses exec, which is not supported (supported: token, tokenFile, client-certificate, client-certificate-data, client-key, client-key-data, extensions)'
 * ```
 */
export async function parseKubeconfig(
  text: string,
  path: string,
): Promise<{ context: string; cluster: Json & { server: string }; user: Json }> {
  const bad = (why: string) => new AccessError(`kubeconfig ${path}: ${why}`);
  const { parse: parseYaml } = await import("yaml");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw bad(`not YAML: ${errorText(err).split("\n")[0]}`);
  }
  if (!isObj(doc)) throw bad("not a kubeconfig (no mapping at the top)");
  const name = doc["current-context"];
  if (typeof name !== "string" || name === "") throw bad("no current-context");
  const named = (list: unknown, what: string, n: unknown): Json => {
    const found = (Array.isArray(list) ? list : []).find((x) => isObj(x) && x.name === n);
    if (!isObj(found) || !isObj(found[what])) {
      throw bad(`${what} ${JSON.stringify(n)} of context ${JSON.stringify(name)} is not defined`);
    }
    return found[what] as Json;
  };
  const ctx = named(doc.contexts, "context", name);
  const cluster = named(doc.clusters, "cluster", ctx.cluster);
  const user = ctx.user === undefined ? {} : named(doc.users, "user", ctx.user);
  for (
    const [obj, keys, what, n] of [
      [cluster, CLUSTER_KEYS, "cluster", ctx.cluster],
      [user, USER_KEYS, "user", ctx.user],
    ] as const
  ) {
    for (const k of Object.keys(obj)) {
      if (keys.has(k) || obj[k] === undefined || obj[k] === null || obj[k] === "") continue;
      throw bad(
        `${what} ${JSON.stringify(n)} uses ${k}, which is not supported (supported: ${
          [...keys].filter((x) => x !== "server").join(", ")
        })`,
      );
    }
  }
  const server = cluster.server;
  if (typeof server !== "string" || !/^https?:\/\/[^/\s]+\/?$/.test(server)) {
    throw bad(`cluster server ${JSON.stringify(server)} is not an http(s)://HOST[:PORT] URL`);
  }
  if (/^https?:\/\/[^/]*@/.test(server)) {
    // Said without the URL itself: it holds a secret.
    throw bad(
      `cluster ${
        JSON.stringify(ctx.cluster)
      } server has credentials in its URL (user:password@), ` +
        "which is not supported: use token, tokenFile or a client certificate",
    );
  }
  return { context: name, cluster: { ...cluster, server: server.replace(/\/$/, "") }, user };
}

/**
 * A warning for a plain `http://` server that is not loopback (the token and
 * the Services view would cross the network unprotected), else `undefined`.
 *
 * @example
 * ```ts
 * import { plainHttpWarning } from "./access.ts";
 * plainHttpWarning("http://127.0.0.1:8080"); // => undefined
 * plainHttpWarning("https://10.0.0.1:6443"); // => undefined
 * plainHttpWarning("http://10.0.0.1:8080")?.startsWith("Kubernetes: plain http://"); // => true
 * ```
 */
export function plainHttpWarning(server: string): string | undefined {
  if (!server.startsWith("http://")) return undefined;
  const host = new URL(server).hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || /^127\./.test(host);
  return loopback ? undefined : `Kubernetes: plain http:// to ${host}, not loopback: the ` +
    "token and the Services view cross the network unencrypted and unauthenticated; use https://";
}

function decodeData(b64: string, what: string, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(b64.replace(/\s+/g, "")), (ch) => ch.charCodeAt(0)),
    );
  } catch {
    throw new AccessError(`kubeconfig ${path}: ${what} is not base64 of PEM text`);
  }
}

/**
 * `kubectl kustomize` for the deploy tests: whether kubectl is here, a test
 * that needs it (skipped without it, failed in CI), and an overlay of
 * deploy/ rendered from a temporary directory.
 *
 * @module
 */
import { relative } from "node:path";
import { parseAllDocuments } from "yaml";

/** deploy/, as a path. */
export const DEPLOY_DIR = new URL("../../deploy/", import.meta.url).pathname;
const REQUIRED = Deno.env.get("CI") === "true" ||
  Deno.env.get("CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS") === "1";

/** Whether `kubectl` is on PATH. */
export const hasKubectl = new Deno.Command("sh", { args: ["-c", "command -v kubectl"] })
  .outputSync().success;

/** A test that needs kubectl: skipped without it, or failed when the tools are required. */
export function kubectlTest(name: string, fn: () => Promise<void>): void {
  if (hasKubectl) Deno.test(name, fn);
  else if (REQUIRED) {
    Deno.test(name, () => {
      throw new Error("kubectl is required in CI but not installed");
    });
  } else Deno.test({ name: `${name} (skipped: kubectl is not installed)`, ignore: true, fn });
}

/** A rendered object, loosely typed. */
export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  // deno-lint-ignore no-explicit-any
  spec?: any;
}

/** `kubectl kustomize DIR`'s objects; throws with kubectl's message when it fails. */
export async function kustomize(dir: string): Promise<K8sObject[]> {
  const out = await new Deno.Command("kubectl", { args: ["kustomize", "."], cwd: dir }).output();
  if (out.code !== 0) {
    throw new Error(`kubectl kustomize ${dir}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return parseAllDocuments(new TextDecoder().decode(out.stdout)).map((d) => {
    if (d.errors.length > 0) {
      throw new Error(`kubectl kustomize ${dir}: YAML errors: ${d.errors.map((e) => e.message)}`);
    }
    return d.toJS() as K8sObject;
  }).filter((o) => o !== null && o !== undefined);
}

/**
 * Renders an overlay of deploy/ in a temporary directory: `resources` is
 * deploy/, `components` are paths under deploy/, `extra` more lines.
 */
export async function renderOverlay(components: string[], extra: string[] = []) {
  const dir = await Deno.makeTempDir({ prefix: "overlay-" });
  try {
    await Deno.writeTextFile(
      `${dir}/kustomization.yaml`,
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        `  - ${relative(dir, DEPLOY_DIR)}`, // kustomize takes relative paths only
        ...(components.length ? ["components:"] : []),
        ...components.map((c) => `  - ${relative(dir, DEPLOY_DIR + c)}`),
        ...extra,
        "",
      ].join("\n"),
    );
    return await kustomize(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

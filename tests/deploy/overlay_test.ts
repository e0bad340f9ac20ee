/**
 * examples/image-overlay: the overlay the README tells operators to
 * copy renders with `kubectl kustomize` alone and puts their image in the
 * DaemonSet; an overlay with `newName`/`newTag` of its own does too; the
 * README's dry-run patch, added to an overlay, runs the agent with `--dry-run`.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { DEPLOY_DIR, kubectlTest, kustomize, renderOverlay } from "../support/kustomize.ts";

const EXAMPLE = `${DEPLOY_DIR}../examples/image-overlay`;

function imageOf(
  objs: { kind?: string; spec?: { template?: { spec?: { containers?: { image?: string }[] } } } }[],
) {
  const ds = objs.find((o) => o.kind === "DaemonSet");
  return ds?.spec?.template?.spec?.containers?.[0]?.image;
}

Deno.test("the image overlay example names the DaemonSet's image and sets a new name and tag", () => {
  const k = parse(Deno.readTextFileSync(`${EXAMPLE}/kustomization.yaml`)) as {
    resources: string[];
    images: { name: string; newName: string; newTag: string }[];
  };
  const ds = Deno.readTextFileSync(`${DEPLOY_DIR}daemonset.yaml`);
  const image = /^\s+image: (\S+):(\S+)$/m.exec(ds);
  assert.ok(image, "the DaemonSet has an image");
  assert.deepEqual(k.images.map((i) => i.name), [image[1]]);
  assert.notEqual(k.images[0]!.newName, image[1]);
  assert.deepEqual(k.resources, ["../../deploy"]);
});

kubectlTest(
  "kubectl kustomize examples/image-overlay renders the DaemonSet with the new image",
  async () => {
    const objs = await kustomize(EXAMPLE);
    assert.equal(imageOf(objs), "registry.example.com/platform/conntrack-cleaner:0.1.0");
    const base = await kustomize(DEPLOY_DIR);
    const kinds = (os: { kind?: string }[]) => os.map((o) => o.kind).sort();
    assert.deepEqual(kinds(objs), kinds(base), "the overlay renders everything deploy/ does");
  },
);

kubectlTest(
  "kubectl kustomize: an operator's overlay with its own images: entry sets registry and tag",
  async () => {
    const objs = await renderOverlay([], [
      "images:",
      "  - name: registry.example/conntrack-cleaner",
      "    newName: 10.0.0.5:5000/infra/conntrack-cleaner",
      "    newTag: 0.1.0-rc1",
    ]);
    assert.equal(imageOf(objs), "10.0.0.5:5000/infra/conntrack-cleaner:0.1.0-rc1");
  },
);

/** The README's YAML block that patches the DaemonSet (its "watch before it deletes" step). */
function readmeDryRunPatch(): string[] {
  const readme = Deno.readTextFileSync(`${DEPLOY_DIR}../README.md`);
  const blocks = [...readme.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const patch = blocks.filter((b) => b.startsWith("patches:"));
  assert.equal(patch.length, 1, "one yaml block in the README starts with patches:");
  return patch[0]!.trimEnd().split("\n");
}

kubectlTest(
  "kubectl kustomize: the README's dry-run patch adds --dry-run to the agent's args and changes nothing else",
  async () => {
    const objs = await renderOverlay([], readmeDryRunPatch());
    const base = await kustomize(DEPLOY_DIR);
    const argsOf = (os: typeof objs) =>
      os.find((o) => o.kind === "DaemonSet")?.spec?.template?.spec?.containers?.[0]
        ?.args as string[];
    assert.deepEqual(argsOf(objs), [...argsOf(base), "--dry-run"]);
    const withoutArgs = (os: typeof objs) =>
      JSON.stringify(os, (k, v) => (k === "args" ? undefined : v));
    assert.equal(withoutArgs(objs), withoutArgs(base));
  },
);

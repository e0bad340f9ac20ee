/**
 * Links between the project's markdown files resolve: every relative link
 * in README.md, CHANGELOG.md and docs/*.md names a file that exists, and a
 * `#fragment` names a heading of that file (GitHub's anchor for it) or an
 * explicit `<a id>`. Sections move between files; their links must follow.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function headingAnchor(heading: string): string {
  return heading
    .replace(/`/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a markdown text offers: its headings (duplicates numbered) and `<a id>`s. */
function anchorsOf(md: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of md.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    const h = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = headingAnchor(h[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  }
  return out;
}

/** Relative links of a markdown text (outside code), as written: `path#fragment`. */
function relativeLinks(md: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of md.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    const text = line.replace(/`[^`]*`/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
      out.push(target);
    }
  }
  return out;
}

/** Every broken link of the markdown file at `path` (relative to the repository). */
function brokenLinks(path: string): string[] {
  const base = new URL(path, ROOT);
  const md = Deno.readTextFileSync(base);
  const broken: string[] = [];
  for (const link of relativeLinks(md)) {
    const [file, fragment] = link.split("#", 2) as [string, string | undefined];
    const target = file === "" ? base : new URL(file, base);
    let text: string | undefined;
    try {
      const stat = Deno.statSync(target);
      text = stat.isFile ? Deno.readTextFileSync(target) : undefined;
    } catch {
      broken.push(`${path}: ${link}: no such file`);
      continue;
    }
    if (fragment === undefined) continue;
    if (text === undefined || !target.pathname.endsWith(".md")) {
      broken.push(`${path}: ${link}: a fragment of something that is not a markdown file`);
    } else if (!anchorsOf(text).has(fragment)) {
      broken.push(`${path}: ${link}: no such heading`);
    }
  }
  return broken;
}

function markdownFiles(): string[] {
  const docs = [...Deno.readDirSync(new URL("docs/", ROOT))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`);
  return ["README.md", "CHANGELOG.md", ...docs.sort()];
}

Deno.test("headingAnchor: spells headings as GitHub's anchors", () => {
  assert.equal(headingAnchor("Deploy on Kubernetes"), "deploy-on-kubernetes");
  assert.equal(headingAnchor("When to set `--destinations`"), "when-to-set---destinations");
  assert.equal(headingAnchor("Do no harm, end to end"), "do-no-harm-end-to-end");
  assert.equal(
    headingAnchor("Upgrade, rollback, uninstall (systemd)"),
    "upgrade-rollback-uninstall-systemd",
  );
});

Deno.test("anchorsOf: headings outside code, numbered duplicates and explicit ids", () => {
  const md = [
    "# A",
    "## Two words",
    "```sh",
    "# not a heading",
    "```",
    "## Two words",
    '<a id="old-name"></a>',
  ].join("\n");
  assert.deepEqual([...anchorsOf(md)].sort(), ["a", "old-name", "two-words", "two-words-1"]);
});

Deno.test("relativeLinks: links outside code spans and blocks, not URLs", () => {
  const md = [
    "See [a](docs/a.md#x), [b](https://example.com/b) and `[c](c.md)`.",
    "```md",
    "[d](d.md)",
    "```",
    "[e](#local)",
  ].join("\n");
  assert.deepEqual(relativeLinks(md), ["docs/a.md#x", "#local"]);
});

Deno.test("README.md, CHANGELOG.md and docs/*.md: every relative link names a file and heading that exist", () => {
  const files = markdownFiles();
  assert.ok(files.includes("docs/reference.md") && files.includes("docs/README.md"));
  const links = files.flatMap((f) => relativeLinks(Deno.readTextFileSync(new URL(f, ROOT))));
  assert.ok(links.length >= 20, `${links.length} links checked`);
  assert.deepEqual(files.flatMap(brokenLinks), []);
});

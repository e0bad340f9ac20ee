/**
 * Prints one version's section of CHANGELOG.md, for the notes of a release
 * (.github/workflows/release.yml). The changelog keeps the "Keep a Changelog"
 * form: one `## [X.Y.Z]` heading per release (a ` - DATE` may follow), newest
 * first, link definitions (`[X.Y.Z]: URL`) at the end.
 *
 *     deno run --allow-read scripts/release_notes.ts v0.1.0 [--changelog FILE]
 *
 * The version may carry the tag's leading `v`. Prints the section's body
 * (without its heading, trimmed) and exits 0; exits 1 with a message on stderr
 * when the changelog has no such section or the section is empty, so that a
 * release is never published with empty notes; 2 for bad arguments.
 *
 * @module
 */

/**
 * The body of `version`'s section of `changelog`, trimmed; `undefined` when
 * there is no `## [version]` heading. The section ends at the next `## `
 * heading or at the first link definition line.
 *
 * @example
 * ```ts
 * import { releaseNotes } from "./release_notes.ts";
 * const log = "# Changelog\n\n## [0.2.0] - 2025-02-01\n\n- faster\n\n## [0.1.0]\n\n- first\n";
 * releaseNotes(log, "v0.2.0"); // => "- faster"
 * releaseNotes(log, "0.3.0"); // => undefined
 * ```
 */
export function releaseNotes(changelog: string, version: string): string | undefined {
  const want = version.replace(/^v/, "");
  const lines = changelog.split(/\r?\n/);
  const start = lines.findIndex((l) => {
    const m = /^##\s+\[([^\]]+)\]/.exec(l);
    return m !== null && m[1] === want;
  });
  if (start < 0) return undefined;
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^##\s/.test(line) || /^\[[^\]]+\]:\s*\S/.test(line)) break;
    body.push(line);
  }
  return body.join("\n").trim();
}

function main(args: string[]): number {
  let file = "CHANGELOG.md";
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--changelog" && args[i + 1] !== undefined) file = args[++i]!;
    else rest.push(args[i]!);
  }
  const version = rest[0];
  if (
    rest.length !== 1 || version === undefined ||
    !/^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)
  ) {
    console.error("usage: release_notes.ts vX.Y.Z [--changelog FILE]");
    return 2;
  }
  const notes = releaseNotes(Deno.readTextFileSync(file), version);
  if (notes === undefined) {
    console.error(`release_notes: ${file} has no "## [${version.replace(/^v/, "")}]" section`);
    return 1;
  }
  if (notes === "") {
    console.error(`release_notes: the ${version} section of ${file} is empty`);
    return 1;
  }
  console.log(notes);
  return 0;
}

if (import.meta.main) Deno.exit(main(Deno.args));

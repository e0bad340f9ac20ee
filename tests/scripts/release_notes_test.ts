/**
 * scripts/release_notes.ts, run as the release workflow runs it: one
 * version's CHANGELOG.md section on stdout, or a failure that stops the
 * release before anything is published.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/release_notes.ts", import.meta.url).pathname;

const CHANGELOG = `# Changelog

All notable changes are written here.

## [Unreleased]

- something not released yet

## [0.2.0] - 2025-03-01

### Fixed

- \`--listen=:PORT\` binds every address.

## [0.1.10] - 2025-02-01

## [0.1.0] - 2025-01-15

### Added

- The first release: three rules.
- [0.1.0] is not a link definition when text follows on the line

[Unreleased]: https://example.com/compare/v0.2.0...HEAD
[0.2.0]: https://example.com/compare/v0.1.0...v0.2.0
[0.1.0]: https://example.com/releases/tag/v0.1.0
`;

async function notes(version: string, text = CHANGELOG) {
  const file = await Deno.makeTempFile({ suffix: ".md" });
  try {
    await Deno.writeTextFile(file, text);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", `--allow-read=${file}`, SCRIPT, version, "--changelog", file],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("release_notes.ts prints the tag's section, from under its heading to the next one", async () => {
  const r = await notes("v0.2.0");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "### Fixed\n\n- `--listen=:PORT` binds every address.\n");
});

Deno.test("release_notes.ts stops the last section at the link definitions, and takes a version without v", async () => {
  const r = await notes("0.1.0");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    "### Added\n\n- The first release: three rules.\n" +
      "- [0.1.0] is not a link definition when text follows on the line\n",
  );
  const crlf = await notes("v0.1.0", CHANGELOG.replaceAll("\n", "\r\n"));
  assert.equal(crlf.stdout, r.stdout, "CRLF line ends read the same");
});

Deno.test("release_notes.ts fails for a version without a section, or with an empty one, never printing notes", async () => {
  const missing = await notes("v0.3.0");
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, "");
  assert.match(missing.stderr, /has no "## \[0\.3\.0\]" section/);
  // 0.1.1 is not 0.1.10, nor a prefix match of it.
  assert.equal((await notes("v0.1.1")).code, 1);
  const empty = await notes("v0.1.10");
  assert.equal(empty.code, 1);
  assert.equal(empty.stdout, "");
  assert.match(empty.stderr, /the v0\.1\.10 section of .* is empty/);
});

Deno.test("release_notes.ts refuses a tag that is not a version", async () => {
  for (const bad of ["latest", "v1", "0.1"]) {
    const r = await notes(bad);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /usage: release_notes\.ts vX\.Y\.Z/);
  }
});

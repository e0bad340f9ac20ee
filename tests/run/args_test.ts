import assert from "node:assert/strict";
import { parseBoolean, parseFlags } from "../../lib/run/args.ts";

const flags = {
  "dry-run": { type: "boolean" as const },
  interval: { type: "string" as const },
  help: { type: "boolean" as const, short: "h" },
};

Deno.test("parseBoolean takes exactly true and false", () => {
  assert.equal(parseBoolean("true"), true);
  assert.equal(parseBoolean("false"), false);
  for (const bad of ["", "TRUE", "False", "1", "0", "yes", "on", " true", "true "]) {
    assert.equal(parseBoolean(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("parseFlags: a boolean flag alone is true, =true and =false set it, the last one wins", () => {
  assert.deepEqual(parseFlags(["--dry-run"], flags), { ok: true, values: { "dry-run": true } });
  assert.deepEqual(parseFlags(["--dry-run=false"], flags), {
    ok: true,
    values: { "dry-run": false },
  });
  assert.deepEqual(parseFlags(["--dry-run=false", "--dry-run=true"], flags), {
    ok: true,
    values: { "dry-run": true },
  });
  assert.deepEqual(parseFlags(["--dry-run", "--dry-run=false"], flags), {
    ok: true,
    values: { "dry-run": false },
  });
});

Deno.test("parseFlags refuses a boolean's value other than true or false, and does not take the next argument", () => {
  for (const bad of ["yes", "1", "", "TRUE"]) {
    const r = parseFlags([`--dry-run=${bad}`], flags);
    assert.deepEqual(r, {
      ok: false,
      message: `--dry-run takes no value, =true or =false (got ${JSON.stringify(bad)}): see --help`,
    });
  }
  const r = parseFlags(["--dry-run", "false"], flags);
  assert.equal(r.ok, false);
  assert.match((r as { message: string }).message, /unexpected argument "false"/);
});

/**
 * Lints the Dockerfile with `dockerfile-utils` (the validator of the
 * Dockerfile language server; a test-only package, pinned in tests/deno.json).
 * `deno task test:static` runs it:
 *
 *     deno run -R tests/lint/dockerfile.ts [DOCKERFILE]
 *
 * Every check the validator has is an error here, the optional ones included
 * (instruction casing, relative WORKDIR, MAINTAINER, single-quoted JSON, an
 * empty continuation line, more than one CMD/ENTRYPOINT/HEALTHCHECK). It
 * reports nothing on the Dockerfile today, so nothing is ignored. Its
 * formatter is not applied: it would indent continuation lines by a tab
 * width, a style choice, not a fault.
 *
 * Before the Dockerfile, it lints a Dockerfile with known faults and requires
 * each to be reported, so a validator that reports nothing cannot pass.
 * Exit code 0 when clean, 1 with one line per problem, 2 when the validator
 * misses a known fault.
 *
 * @module
 */
import dockerfileUtils from "dockerfile-utils";

const { validate, ValidationCode, ValidationSeverity } = dockerfileUtils;

/** Every optional check of the validator, as an error. */
const SETTINGS = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/** A Dockerfile with one fault a line, and the code each must be reported with. */
const KNOWN_FAULTS: [line: string, code: number][] = [
  ["FROM debian:bookworm-slim", -1],
  ["from debian:bookworm-slim", ValidationCode.CASING_INSTRUCTION],
  ["WORKDIR src", ValidationCode.WORKDIR_IS_NOT_ABSOLUTE],
  ["COPY --bogus=1 a b", ValidationCode.UNKNOWN_COPY_FLAG],
  ["ENTRYPOINT ['/a']", ValidationCode.JSON_IN_SINGLE_QUOTES],
];

/** The problems of `text`, one line each: `NAME:LINE:COLUMN: message (code N)`. */
function lint(name: string, text: string): string[] {
  return validate(text, SETTINGS).map((d) =>
    `${name}:${d.range.start.line + 1}:${
      d.range.start.character + 1
    }: ${d.message} (code ${d.code})`
  );
}

/** The known faults the validator did not report. */
function missedFaults(): string[] {
  const text = KNOWN_FAULTS.map(([line]) => line).join("\n") + "\n";
  const found = validate(text, SETTINGS).map((d) => `${d.range.start.line}:${d.code}`);
  return KNOWN_FAULTS.flatMap(([line, code], i) =>
    code < 0 || found.includes(`${i}:${code}`) ? [] : [`line ${i + 1} "${line}": code ${code}`]
  );
}

if (import.meta.main) {
  const missed = missedFaults();
  if (missed.length > 0) {
    console.error(`lint dockerfile: the validator misses known faults: ${missed.join("; ")}`);
    Deno.exit(2);
  }
  const path = Deno.args[0] ?? new URL("../../Dockerfile", import.meta.url).pathname;
  const problems = lint(Deno.args[0] ?? "Dockerfile", await Deno.readTextFile(path));
  for (const p of problems) console.error(p);
  console.log(`lint dockerfile: ${problems.length} problem(s)`);
  Deno.exit(problems.length === 0 ? 0 : 1);
}

/**
 * Tests that depend on the machine, and never skip silently in CI.
 *
 * `machineTest` registers a Deno.test that may be skipped, with the reason in
 * its name, where the machine lacks what it needs (a tool, root, Linux).
 * `kernelTest` is a machine test that also needs root, `ip netns` and
 * conntrack. Where the test is required — `CI=true` or
 * `CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS=1` (both set by .ci/run) — a missing
 * prerequisite fails the test with its reason instead of hiding it; that
 * includes a test's own `skip` and `needs`.
 *
 * Test stages (deno.json): a machine test lives in tests/e2e/, tests/deploy/
 * or a file named `*_kernel_test.ts`; every other test file belongs to the
 * unit stage (`deno task test:unit`: no root, no kernel, no deploy tools),
 * which sets `CONNTRACK_CLEANER_TEST_STAGE=unit`. There, a machine test
 * fails, naming where it should live, so the stages cannot drift apart.
 *
 * @module
 */
import { canRunKernelTests } from "../../testbed/netns.ts";

const reason = await canRunKernelTests();

/** Whether machine-dependent tests must run (CI): a skip becomes a failure. */
export const REQUIRED = Deno.env.get("CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS") === "1" ||
  Deno.env.get("CI") === "true";

/** Options for {@linkcode machineTest} and {@linkcode kernelTest}. */
export interface MachineTestOptions {
  /** Keep Deno's op and resource sanitizers on (default: off). */
  sanitize?: boolean;
  /**
   * Why this one test cannot run here (undefined: it can). It is then
   * skipped with that reason, or fails with it where tests are required.
   */
  skip?: string | undefined;
  /** Commands the test runs that must be on PATH (or in /usr/sbin, /sbin). */
  needs?: string[];
}

/** The full path of `name` on PATH (plus /usr/sbin and /sbin), or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    if (dir === "") continue;
    try {
      const path = `${dir}/${name}`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function whyNot(options: MachineTestOptions): string | undefined {
  if (options.skip !== undefined) return options.skip;
  const missing = (options.needs ?? []).filter((n) => which(n) === undefined);
  return missing.length > 0 ? `${missing.join(", ")} not installed` : undefined;
}

/** Whether this run is the unit stage (`deno task test:unit`). */
export const UNIT_STAGE = Deno.env.get("CONNTRACK_CLEANER_TEST_STAGE") === "unit";

/** Registers `fn` as a machine-dependent test (see the module doc). */
export function machineTest(
  name: string,
  fn: () => Promise<void> | void,
  options: MachineTestOptions = {},
): void {
  if (UNIT_STAGE) {
    Deno.test(name, () => {
      throw new Error(
        "a machine test in a unit-stage file: move it to a *_kernel_test.ts file, " +
          "tests/e2e/ or tests/deploy/",
      );
    });
    return;
  }
  const sanitize = options.sanitize ?? true;
  const why = whyNot(options);
  if (why === undefined) {
    Deno.test({ name, fn, sanitizeOps: sanitize, sanitizeResources: sanitize });
  } else if (REQUIRED) {
    Deno.test(name, () => {
      throw new Error(`required here (CI) but cannot run: ${why}`);
    });
  } else {
    Deno.test({ name: `${name} (skipped: ${why})`, ignore: true, fn });
  }
}

/** Registers `fn` as a kernel test (see the module doc); sanitizers off unless asked. */
export function kernelTest(
  name: string,
  fn: () => Promise<void>,
  options: MachineTestOptions = {},
): void {
  machineTest(name, fn, {
    ...options,
    sanitize: options.sanitize ?? false,
    skip: reason !== undefined ? `kernel tests cannot run: ${reason}` : options.skip,
  });
}

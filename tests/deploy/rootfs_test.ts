/**
 * scripts/assemble_rootfs.sh, run for real: the tree it builds must run the
 * binaries through chroot with an empty environment, and hold nothing but
 * them, their shared libraries and the loader.
 *
 * The local `deno` executable stands in for the compiled agent (a compiled
 * Deno binary is the same runtime, with the same glibc needs).
 */
import assert from "node:assert/strict";
import { machineTest, which } from "../support/machine.ts";

const SCRIPT = new URL("../../scripts/assemble_rootfs.sh", import.meta.url).pathname;
const CONNTRACK = "/usr/sbin/conntrack";
/** Where the Dockerfile puts the agent; the stand-in goes to the same place. */
const AGENT_TARGET = "/usr/local/bin/conntrack-cleaner";
const STAND_IN = Deno.realPathSync(Deno.execPath());

const CHROOT = which("chroot");
const CC = which("cc");

/** Why the script itself cannot run here, or undefined. */
function scriptSkipReason(): string | undefined {
  if (Deno.build.os !== "linux") return "not Linux";
  for (const tool of ["bash", "ldd", "readelf"]) {
    if (!which(tool)) return `${tool} is not installed`;
  }
  return undefined;
}

/** Why the chroot runs cannot happen here, or undefined. */
function chrootSkipReason(): string | undefined {
  const reason = scriptSkipReason();
  if (reason) return reason;
  if (Deno.uid() !== 0) return "not root (chroot needs CAP_SYS_CHROOT)";
  if (!CHROOT) return "chroot is not installed";
  try {
    Deno.statSync(CONNTRACK);
  } catch {
    return `${CONNTRACK} is missing (apt-get install conntrack)`;
  }
  return undefined;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<Result> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    ...(env ? { env, clearEnv: true } : {}),
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function assemble(dest: string, ...specs: string[]): Promise<Result> {
  return await run("bash", [SCRIPT, dest, ...specs]);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rootfs-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface TreeEntry {
  /** Absolute path inside the tree. */
  path: string;
  kind: "file" | "dir" | "symlink" | "other";
  /** For symlinks: the link text. */
  link?: string;
}

function walk(root: string, rel = ""): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (const e of Deno.readDirSync(root + (rel || "/"))) {
    const path = `${rel}/${e.name}`;
    const info = Deno.lstatSync(root + path);
    if (info.isSymlink) out.push({ path, kind: "symlink", link: Deno.readLinkSync(root + path) });
    else if (info.isDirectory) {
      out.push({ path, kind: "dir" });
      out.push(...walk(root, path));
    } else if (info.isFile) out.push({ path, kind: "file" });
    else out.push({ path, kind: "other" });
  }
  return out;
}

/** Follow a symlink chain inside the tree (as chroot would). */
function resolveInTree(root: string, path: string, hops = 0): string {
  assert.ok(hops < 40, `symlink loop at ${path}`);
  const info = Deno.lstatSync(root + path);
  if (!info.isSymlink) return path;
  const link = Deno.readLinkSync(root + path);
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const next = link.startsWith("/") ? link : `${dir}/${link}`;
  const parts: string[] = [];
  for (const p of next.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return resolveInTree(root, "/" + parts.join("/"), hops + 1);
}

function isElf(file: string): boolean {
  const f = Deno.openSync(file);
  try {
    const buf = new Uint8Array(4);
    const n = f.readSync(buf);
    return n === 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
  } finally {
    f.close();
  }
}

async function interpreter(file: string): Promise<string | undefined> {
  const r = await run("readelf", ["-lW", file]);
  assert.equal(r.code, 0, r.stderr);
  return /\[Requesting program interpreter: (.*)\]/.exec(r.stdout)?.[1];
}

const SHARED_OBJECT = /\.so(\.\d+)*$/;
const LIB_DIR = /^\/(usr\/)?lib(64|32|x32)?\//;

machineTest(
  "rootfs: conntrack and the agent stand-in run via chroot with an empty environment",
  async () => {
    await withTempDir(async (dir) => {
      const dest = `${dir}/rootfs`;
      const built = await assemble(dest, `${STAND_IN}:${AGENT_TARGET}`, CONNTRACK);
      assert.equal(built.code, 0, built.stderr);

      const ct = await run(CHROOT!, [dest, CONNTRACK, "--version"], {});
      assert.equal(ct.code, 0, ct.stderr);
      assert.match(ct.stdout + ct.stderr, /conntrack v1\.4/);

      const agent = await run(CHROOT!, [dest, AGENT_TARGET, "--version"], {});
      assert.equal(agent.code, 0, agent.stderr);
      assert.match(agent.stdout, new RegExp(`^deno ${Deno.version.deno.replaceAll(".", "\\.")} `));

      // The netlink source loads libc.so.6 through Deno.dlopen: it must resolve
      // inside the tree, with no ld.so.cache. (`deno eval` wants a cache
      // directory; a compiled binary does not.)
      await Deno.mkdir(`${dest}/tmp`);
      const code =
        'const l = Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } });' +
        "console.log(`getpid ${l.symbols.getpid()}`);";
      const ffi = await run(CHROOT!, [dest, AGENT_TARGET, "eval", code], { DENO_DIR: "/tmp/deno" });
      assert.equal(ffi.code, 0, ffi.stderr);
      assert.match(ffi.stdout, /^getpid \d+$/m);
    });
  },
  { skip: chrootSkipReason() },
);

machineTest(
  "rootfs: the tree holds only the two binaries, their shared libraries and the loader",
  async () => {
    await withTempDir(async (dir) => {
      const dest = `${dir}/rootfs`;
      const built = await assemble(dest, `${STAND_IN}:${AGENT_TARGET}`, CONNTRACK);
      assert.equal(built.code, 0, built.stderr);

      const entries = walk(dest);
      const files = entries.filter((e) => e.kind === "file").map((e) => e.path);
      assert.deepEqual(entries.filter((e) => e.kind === "other"), [], "no devices, fifos, sockets");
      for (const path of files) {
        if (path === AGENT_TARGET || path === CONNTRACK) continue;
        assert.match(path, LIB_DIR, `${path} is in a library directory`);
        assert.match(path, SHARED_OBJECT, `${path} is a shared object`);
        assert.ok(isElf(dest + path), `${path} is ELF`);
      }
      for (const e of entries.filter((e) => e.kind === "symlink")) {
        assert.match(e.path, LIB_DIR, `${e.path}: only library symlinks`);
        const target = resolveInTree(dest, e.path);
        assert.ok(files.includes(target), `${e.path} -> ${e.link} resolves inside the tree`);
      }
      const leaves = entries.filter((e) => e.kind !== "dir").map((e) => e.path);
      for (const e of entries.filter((e) => e.kind === "dir")) {
        assert.ok(
          leaves.some((f) => f.startsWith(e.path + "/")),
          `${e.path} is on the way to a file or link`,
        );
      }
      for (const absent of ["/bin", "/etc", "/usr/bin", "/sbin", "/tmp", "/dev", "/proc"]) {
        assert.ok(!entries.some((e) => e.path === absent), `no ${absent}`);
      }

      // The loader both binaries ask for is there, and conntrack's libraries
      // came from its dependencies, not from a list.
      for (const bin of [STAND_IN, CONNTRACK]) {
        const interp = await interpreter(bin);
        assert.ok(interp, `${bin} has an interpreter`);
        assert.ok(files.includes(resolveInTree(dest, interp)), `${interp} is in the tree`);
      }
      const names = files.map((f) => f.slice(f.lastIndexOf("/") + 1));
      for (const lib of ["libnetfilter_conntrack.so", "libnfnetlink.so", "libmnl.so", "libc.so"]) {
        assert.ok(names.some((n) => n.startsWith(lib)), `${lib}* is in the tree`);
      }
    });
  },
  { skip: chrootSkipReason() },
);

machineTest(
  "rootfs: running the script twice into the same tree works",
  async () => {
    await withTempDir(async (dir) => {
      const dest = `${dir}/rootfs`;
      const first = await assemble(dest, `${STAND_IN}:${AGENT_TARGET}`);
      assert.equal(first.code, 0, first.stderr);
      const before = walk(dest);
      const second = await assemble(dest, `${STAND_IN}:${AGENT_TARGET}`);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(walk(dest), before);
    });
  },
  { skip: scriptSkipReason() },
);

machineTest(
  "rootfs script: fails with a message for a missing executable",
  async () => {
    await withTempDir(async (dir) => {
      const r = await assemble(`${dir}/rootfs`, `${dir}/no-such-binary`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /error: .*no-such-binary.* does not exist/);
    });
  },
  { skip: scriptSkipReason() },
);

machineTest(
  "rootfs script: refuses a script (no shell in the image)",
  async () => {
    await withTempDir(async (dir) => {
      const script = `${dir}/hello.sh`;
      await Deno.writeTextFile(script, "#!/bin/sh\necho hello\n", { mode: 0o755 });
      const r = await assemble(`${dir}/rootfs`, script);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /not an ELF file/);
    });
  },
  { skip: scriptSkipReason() },
);

machineTest(
  "rootfs script: rejects a relative TARGET and prints usage without arguments",
  async () => {
    await withTempDir(async (dir) => {
      const r = await assemble(`${dir}/rootfs`, `${CONNTRACK}:usr/sbin/conntrack`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /TARGET must be an absolute path/);
      const usage = await run("bash", [SCRIPT]);
      assert.notEqual(usage.code, 0);
      assert.match(usage.stderr, /usage: /);
    });
  },
  { skip: scriptSkipReason() },
);

/** Builds `prog`, linked to `libdemo.so.1` in `libdir` through an absolute RUNPATH. */
async function buildDemo(dir: string): Promise<{ prog: string; lib: string }> {
  const libdir = `${dir}/demo-lib`;
  await Deno.mkdir(libdir);
  await Deno.writeTextFile(`${dir}/demo.c`, "int demo(void) { return 42; }\n");
  await Deno.writeTextFile(
    `${dir}/main.c`,
    "int demo(void);\nint main(void) { return demo() - 42; }\n",
  );
  const lib = `${libdir}/libdemo.so.1`;
  const so = await run(CC!, [
    "-shared",
    "-fPIC",
    "-Wl,-soname,libdemo.so.1",
    "-o",
    lib,
    `${dir}/demo.c`,
  ]);
  assert.equal(so.code, 0, so.stderr);
  const prog = `${dir}/demo`;
  const exe = await run(CC!, [
    "-o",
    prog,
    `${dir}/main.c`,
    `-L${libdir}`,
    "-l:libdemo.so.1",
    `-Wl,-rpath,${libdir}`,
  ]);
  assert.equal(exe.code, 0, exe.stderr);
  return { prog, lib };
}

const ccSkip = scriptSkipReason() ??
  (CC ? undefined : "no C compiler (cc) to build a test program");

machineTest(
  "rootfs script: follows a library found outside the system directories (RUNPATH), and the program runs via chroot",
  async () => {
    await withTempDir(async (dir) => {
      const { prog, lib } = await buildDemo(dir);
      const dest = `${dir}/rootfs`;
      const r = await assemble(dest, prog);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Deno.statSync(dest + lib).isFile, `${lib} copied at its own path`);
      // and it runs from the tree alone
      const ran = await run(CHROOT!, [dest, prog], {});
      assert.equal(ran.code, 0, ran.stderr);
    });
  },
  { skip: ccSkip ?? chrootSkipReason() },
);

machineTest(
  "rootfs script: fails loudly, naming it, when a library cannot be found",
  async () => {
    await withTempDir(async (dir) => {
      const { prog, lib } = await buildDemo(dir);
      await Deno.remove(lib);
      const r = await assemble(`${dir}/rootfs`, prog);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /error: .*needs 'libdemo\.so\.1', which cannot be found/);
    });
  },
  { skip: ccSkip },
);

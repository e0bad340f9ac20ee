/**
 * A file opened with `open(2)` through libc (FFI), for what `Deno.open`
 * cannot ask: `O_NONBLOCK`, so that opening a FIFO with no writer does not
 * hold the whole process, and the type of what was opened, read from the
 * descriptor (`statx(2)` with `AT_EMPTY_PATH`), not from the path. Reads are
 * plain synchronous `read(2)` calls on that descriptor.
 *
 * Why not `node:fs` (which can do both): it starts Deno's Node layer, about
 * 9 MB of resident memory for an idle agent (docs/benchmarks.md, idle
 * footprint), while the agent loads libc through FFI anyway (lib/os/libc.ts).
 * The `statx` buffer is the same on every Linux architecture, unlike
 * `struct stat`.
 *
 * @module
 */
import { describeErrno, Errno } from "./errno.ts";
import { errno, libc as lib } from "./libc.ts";

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;
const STATX_TYPE = 0x1;
/** Offset of `stx_mode` (u16) in `struct statx` (linux/stat.h). */
const STX_MODE = 28;
const STATX_SIZE = 256;
const S_IFMT = 0o170000;
const KINDS: Record<number, FileKind> = {
  0o100000: "file",
  0o040000: "directory",
  0o010000: "fifo",
  0o020000: "character device",
  0o060000: "block device",
  0o140000: "socket",
  0o120000: "symlink",
};

/** What a descriptor refers to. */
export type FileKind =
  | "file"
  | "directory"
  | "fifo"
  | "character device"
  | "block device"
  | "socket"
  | "symlink"
  | "unknown";

/** `what` failed with `e`, as the `Deno.errors` class callers tell apart. */
function failure(e: number, what: string): Error {
  const message = `${describeErrno(e)}: ${what}`;
  if (e === Errno.ENOENT) return new Deno.errors.NotFound(message);
  if (e === Errno.EACCES || e === Errno.EPERM) return new Deno.errors.PermissionDenied(message);
  return new Error(message);
}

/**
 * A descriptor opened read-only and non-blocking by {@linkcode FdFile.open}.
 *
 * @example
 * ```ts
 * import { FdFile } from "./fd_file.ts";
 * using f = FdFile.open("/proc/self/status");
 * f.kind; // => "file"
 * f.readSync(new Uint8Array(5)); // => 5
 * ```
 */
export class FdFile {
  readonly #fd: number;
  readonly #path: string;
  #closed = false;
  /** What was opened, from the descriptor. */
  readonly kind: FileKind;

  private constructor(fd: number, path: string, kind: FileKind) {
    this.#fd = fd;
    this.#path = path;
    this.kind = kind;
  }

  /**
   * Opens `path` (`O_RDONLY | O_NONBLOCK | O_CLOEXEC`) and reads its type.
   * Throws `Deno.errors.NotFound`, `Deno.errors.PermissionDenied`, or an
   * `Error` naming the errno.
   */
  static open(path: string): FdFile {
    const l = lib();
    const fd = l.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw failure(errno(), `open '${path}'`);
    const st = new Uint8Array(STATX_SIZE);
    if (l.statx(fd, new Uint8Array(1), AT_EMPTY_PATH, STATX_TYPE, st) !== 0) {
      const e = errno();
      l.close(fd);
      throw failure(e, `statx '${path}'`);
    }
    const mode = new Uint16Array(st.buffer, STX_MODE, 1)[0]! & S_IFMT; // host byte order
    return new FdFile(fd, path, KINDS[mode] ?? "unknown");
  }

  /** Reads up to `buf.length` bytes: how many, or `null` at the end of the file. */
  readSync(buf: Uint8Array): number | null {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.#path} is closed`);
    for (;;) {
      const n = Number(lib().read(this.#fd, buf, BigInt(buf.length)));
      if (n > 0) return n;
      if (n === 0) return null;
      const e = errno();
      if (e !== Errno.EINTR) throw failure(e, `read '${this.#path}'`);
    }
  }

  /** Closes the descriptor (again: nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    lib().close(this.#fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

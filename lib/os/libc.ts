/**
 * The agent's one binding of libc (FFI): opened once, at the first call of
 * {@linkcode libc}, with every symbol any module uses. Imports nothing, so
 * lib/run/early_signals.ts can use it before the rest of the agent loads.
 *
 * Symbols ending in `_nb` are declared `nonblocking: true`: each call runs on
 * a worker thread and returns a promise, so the event loop never waits for
 * it (lib/netlink/socket.ts: `sendto`, `poll`, and the `recv` that reads
 * dump data). errno is thread-local: {@linkcode errno} is only meaningful
 * after a synchronous call on this thread.
 *
 * @module
 */

const SYMBOLS = {
  // files (lib/os/fd_file.ts)
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // processes and signals (lib/os/reaper.ts, lib/run/early_signals.ts)
  prctl: { parameters: ["i32", "usize", "usize", "usize", "usize"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  signal: { parameters: ["i32", "usize"], result: "usize" },
  // sockets (lib/netlink/socket.ts)
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv_nb: {
    name: "recv",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
    nonblocking: true,
  },
  sendto_nb: {
    name: "sendto",
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
    nonblocking: true,
  },
  poll_nb: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** libc's functions as the agent declares them. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let symbols: Libc | undefined;

/**
 * libc, opened at the first call (`libc.so.6`, else `libc.so`). Throws a
 * readable error where FFI or libc is unavailable; a later call tries again.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * libc().prctl(0, 0n, 0n, 0n, 0n) === -1; // => true
 * ```
 */
export function libc(): Libc {
  if (symbols) return symbols;
  let last: unknown;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      return symbols = Deno.dlopen(name, SYMBOLS).symbols;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`cannot load libc: ${last instanceof Error ? last.message : last}`);
}

/**
 * errno of the last failed synchronous call on this thread.
 *
 * @example
 * ```ts
 * import { errno, libc } from "./libc.ts";
 * libc().close(-1);
 * errno(); // => 9
 * ```
 */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/**
 * Linux errno numbers that the netlink path meets, with their names and
 * messages, and the error type that carries one.
 *
 * @module
 */

/** Linux (x86-64 and most other ports) errno values used by the netlink code. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  EMSGSIZE: 90,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
} as const;

const MESSAGES: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  4: "Interrupted system call",
  5: "Input/output error",
  9: "Bad file descriptor",
  11: "Resource temporarily unavailable",
  12: "Cannot allocate memory",
  13: "Permission denied",
  14: "Bad address",
  16: "Device or resource busy",
  17: "File exists",
  19: "No such device",
  22: "Invalid argument",
  23: "Too many open files in system",
  24: "Too many open files",
  28: "No space left on device",
  34: "Numerical result out of range",
  38: "Function not implemented",
  90: "Message too long",
  93: "Protocol not supported",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  105: "No buffer space available",
  110: "Connection timed out",
  111: "Connection refused",
};

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Errno).map(([name, value]) => [value, name]),
);

/**
 * The symbolic name of an errno value (`ENOENT`), or `errno N` when unknown.
 *
 * @example
 * ```ts
 * import { errnoName } from "./errno.ts";
 * errnoName(2); // => "ENOENT"
 * ```
 */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}

/**
 * `ENOENT (No such file or directory)`, for error texts and logs.
 *
 * @example
 * ```ts
 * import { describeErrno } from "./errno.ts";
 * describeErrno(1); // => "EPERM (Operation not permitted)"
 * ```
 */
export function describeErrno(errno: number): string {
  const msg = MESSAGES[errno];
  return msg === undefined ? errnoName(errno) : `${errnoName(errno)} (${msg})`;
}

/**
 * An error that carries a Linux errno: a failed system call, or a negative
 * error the kernel returned in an `NLMSG_ERROR` or `NLMSG_DONE` message.
 *
 * @example
 * ```ts
 * import { ErrnoError } from "./errno.ts";
 * const e = new ErrnoError(1, "ctnetlink dump");
 * e.message; // => "ctnetlink dump: EPERM (Operation not permitted)"
 * e.code; // => "EPERM"
 * ```
 */
export class ErrnoError extends Error {
  /** The positive errno value. */
  readonly errno: number;
  /** Its symbolic name, e.g. `ENOENT`. */
  readonly code: string;

  /**
   * @param errno positive errno value
   * @param context what failed (the message starts with it)
   * @param detail extra text the kernel gave (extended ACK message), if any
   */
  constructor(errno: number, context: string, detail?: string) {
    super(`${context}: ${describeErrno(errno)}${detail ? `: ${detail}` : ""}`);
    this.name = "ErrnoError";
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

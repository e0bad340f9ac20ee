/**
 * Strict IPv4/IPv6 address validation and canonical spelling.
 *
 * Everything that reaches a `conntrack` command line passes through here, so
 * it accepts addresses only, never anything that could read as an option.
 *
 * @module
 */

/**
 * Parses a dotted-quad IPv4 address, as the kernel prints it (`%pI4`: no
 * leading zeros), and returns it unchanged, or `undefined` when invalid.
 *
 * @example
 * ```ts
 * import { canonicalIPv4 } from "./addr.ts";
 * canonicalIPv4("10.0.0.1"); // => "10.0.0.1"
 * canonicalIPv4("10.0.0.01"); // => undefined
 * ```
 */
export function canonicalIPv4(s: string): string | undefined {
  return parseIPv4(s) === undefined ? undefined : s;
}

/**
 * The four octets of a strict dotted quad, or `undefined`.
 *
 * @example
 * ```ts
 * import { parseIPv4 } from "./addr.ts";
 * parseIPv4("10.0.0.1"); // => [10, 0, 0, 1]
 * ```
 */
export function parseIPv4(s: string): number[] | undefined {
  if (s.length < 7 || s.length > 15) return undefined;
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (p.length === 0 || p.length > 3) return undefined;
    if (p.length > 1 && p.charCodeAt(0) === 48) return undefined; // leading zero
    let v = 0;
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return undefined;
      v = v * 10 + c;
    }
    if (v > 255) return undefined;
    out.push(v);
  }
  return out;
}

/**
 * Parses any textual IPv6 address (full `2001:0db8:0000:…` as the kernel
 * prints it, compressed `2001:db8::1` as `conntrack` prints it, or with an
 * embedded IPv4 tail) and returns its RFC 5952 form, or `undefined`.
 *
 * @example
 * ```ts
 * import { canonicalIPv6 } from "./addr.ts";
 * canonicalIPv6("2001:0db8:0000:0000:0000:0000:0000:0001"); // => "2001:db8::1"
 * canonicalIPv6("-F"); // => undefined
 * ```
 */
export function canonicalIPv6(s: string): string | undefined {
  const groups = parseIPv6(s);
  return groups === undefined ? undefined : formatIPv6(groups);
}

/** Eight 16-bit groups of an IPv6 address, or `undefined`. */
export function parseIPv6(s: string): number[] | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const dbl = s.indexOf("::");
  if (dbl !== -1 && s.indexOf("::", dbl + 1) !== -1) return undefined;
  const head = dbl === -1 ? s : s.slice(0, dbl);
  const tail = dbl === -1 ? "" : s.slice(dbl + 2);
  const a = parseGroups(head, dbl === -1 || tail === "");
  const b = dbl === -1 ? [] : parseGroups(tail, true);
  if (a === undefined || b === undefined) return undefined;
  if (dbl === -1) return a.length === 8 ? a : undefined;
  if (a.length + b.length > 7) return undefined;
  return [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
}

/** Colon-separated hex groups; the last may be a dotted quad when `last`. */
function parseGroups(s: string, last: boolean): number[] | undefined {
  if (s === "") return [];
  const parts = s.split(":");
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (last && i === parts.length - 1 && p.includes(".")) {
      const v4 = parseIPv4(p);
      if (v4 === undefined) return undefined;
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      continue;
    }
    if (p.length === 0 || p.length > 4) return undefined;
    let v = 0;
    for (let j = 0; j < p.length; j++) {
      const h = hexValue(p.charCodeAt(j));
      if (h < 0) return undefined;
      v = (v << 4) | h;
    }
    out.push(v);
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** RFC 5952: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
export function formatIPv6(groups: readonly number[]): string {
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: readonly number[]) => xs.map((g) => g.toString(16)).join(":");
  if (bestAt === -1) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/**
 * The 4 or 16 network-order bytes of a textual address of `family`, or
 * `undefined` when the text is not a valid address of that family.
 *
 * @example
 * ```ts
 * import { addressBytes } from "./addr.ts";
 * addressBytes("ipv4", "10.0.0.1"); // => new Uint8Array([10, 0, 0, 1])
 * addressBytes("ipv4", "::1"); // => undefined
 * ```
 */
export function addressBytes(family: "ipv4" | "ipv6", text: string): Uint8Array | undefined {
  if (family === "ipv4") {
    const octets = parseIPv4(text);
    return octets === undefined ? undefined : new Uint8Array(octets);
  }
  if (family !== "ipv6" || text.includes(".") && !text.includes(":")) return undefined;
  const groups = parseIPv6(text);
  if (groups === undefined) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/**
 * Canonical text of a 4-byte (dotted quad) or 16-byte (RFC 5952) address.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./addr.ts";
 * formatAddress(new Uint8Array([10, 0, 0, 1])); // => "10.0.0.1"
 * ```
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`address of ${bytes.length} bytes`);
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  return formatIPv6(groups);
}

/**
 * deploy/conntrack-cleaner.service: the keys the agent needs, hardening that
 * keeps the node's conntrack table reachable, and systemd's own verdict where
 * systemd-analyze is installed.
 */
import assert from "node:assert/strict";
import { loadConfig, OPTIONS } from "../../lib/run/config.ts";
import { machineTest, which } from "../support/machine.ts";

const UNIT_URL = new URL("../../deploy/conntrack-cleaner.service", import.meta.url);
const UNIT_TEXT = Deno.readTextFileSync(UNIT_URL);

/** section -> key -> values in order (a key may repeat, e.g. Environment=). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  let pending = "";
  for (const raw of text.split("\n")) {
    let line = pending + raw.trim();
    pending = "";
    if (line.endsWith("\\")) {
      pending = line.slice(0, -1) + " ";
      continue;
    }
    line = line.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = unit.get(header[1]!) ?? new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section, `key outside a section: ${line}`);
    assert.ok(eq > 0, `not KEY=VALUE: ${line}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    section.set(key, [...(section.get(key) ?? []), value]);
  }
  return unit;
}

const UNIT = parseUnit(UNIT_TEXT);

/** The last value of a key (the one systemd uses for single-valued keys). */
function get(section: string, key: string): string | undefined {
  return UNIT.get(section)?.get(key)?.at(-1);
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ["yes", "true", "1", "on"].includes(v.toLowerCase());
}

/** Environment= values as NAME -> value (quotes removed). */
function environment(): Map<string, string> {
  const env = new Map<string, string>();
  for (const line of UNIT.get("Service")?.get("Environment") ?? []) {
    for (const m of line.matchAll(/"([^"=]+)=([^"]*)"|([^\s"=]+)=(\S*)/g)) {
      env.set(m[1] ?? m[3]!, m[2] ?? m[4]!);
    }
  }
  return env;
}

Deno.test("systemd unit: runs /usr/local/bin/conntrack-cleaner", () => {
  const exec = get("Service", "ExecStart");
  assert.ok(exec, "ExecStart is set");
  assert.equal(exec.split(/\s+/)[0], "/usr/local/bin/conntrack-cleaner");
});

Deno.test("systemd unit: sets CONNTRACK_TABLE_DUMP_FREQUENCY=1s and CONNECTION_RENEWAL_THRESHOLD=3", () => {
  const env = environment();
  assert.equal(env.get("CONNTRACK_TABLE_DUMP_FREQUENCY"), "1s");
  assert.equal(env.get("CONNECTION_RENEWAL_THRESHOLD"), "3");
});

Deno.test("systemd unit: sets only environment variables the agent reads, each to a value it accepts", () => {
  const read = new Set(OPTIONS.flatMap((o) => (o.env ? [o.env] : [])));
  const env = environment();
  for (const name of env.keys()) assert.ok(read.has(name), `${name} is read by the agent`);
  const r = loadConfig([], (name) => env.get(name));
  assert.equal(r.kind, "run", r.kind === "error" ? r.message : "");
});

Deno.test("systemd unit: listens on port 10395 like the DaemonSet", () => {
  const listen = environment().get("CONNTRACK_CLEANER_LISTEN") ??
    /--listen[= ](\S+)/.exec(get("Service", "ExecStart") ?? "")?.[1];
  assert.equal(listen, "0.0.0.0:10395");
});

Deno.test("systemd unit: restarts on failure", () => {
  assert.equal(get("Service", "Restart"), "on-failure");
});

Deno.test("systemd unit: capabilities limited to CAP_NET_ADMIN, no new privileges", () => {
  assert.equal(get("Service", "AmbientCapabilities"), "CAP_NET_ADMIN");
  assert.equal(get("Service", "CapabilityBoundingSet"), "CAP_NET_ADMIN");
  assert.ok(isTrue(get("Service", "NoNewPrivileges")), "NoNewPrivileges=yes");
});

Deno.test("systemd unit: file system hardening (ProtectSystem=strict, ProtectHome, PrivateTmp)", () => {
  assert.equal(get("Service", "ProtectSystem"), "strict");
  assert.ok(isTrue(get("Service", "ProtectHome")), "ProtectHome=yes");
  assert.ok(
    isTrue(get("Service", "PrivateTmp")),
    "PrivateTmp=yes (a writable /tmp for the code cache)",
  );
});

Deno.test("systemd unit: stays in the host network namespace (no PrivateNetwork)", () => {
  const pn = get("Service", "PrivateNetwork");
  assert.ok(pn === undefined || !isTrue(pn), "PrivateNetwork would give it an empty table");
  assert.equal(get("Service", "NetworkNamespacePath"), undefined);
  assert.equal(get("Service", "JoinsNamespaceOf"), undefined);
  assert.ok(
    !isTrue(get("Service", "PrivateUsers")),
    "PrivateUsers would void NET_ADMIN on the host",
  );
});

Deno.test("systemd unit: keeps /proc/net readable and V8's JIT working", () => {
  assert.notEqual(get("Service", "ProcSubset"), "pid", "ProcSubset=pid hides /proc/net");
  assert.ok(
    !isTrue(get("Service", "MemoryDenyWriteExecute")),
    "MemoryDenyWriteExecute breaks V8's JIT",
  );
  const families = get("Service", "RestrictAddressFamilies");
  if (families !== undefined) {
    const list = families.split(/\s+/);
    assert.ok(!families.startsWith("~"), "an allow-list, not a deny-list");
    for (const f of ["AF_NETLINK", "AF_INET", "AF_INET6", "AF_UNIX"]) {
      assert.ok(list.includes(f), `${f} allowed`);
    }
  }
});

Deno.test("systemd unit: runs as root (for /proc/net/nf_conntrack) and is enabled in multi-user.target", () => {
  const user = get("Service", "User");
  assert.ok(user === undefined || user === "root" || user === "0", `User=${user}`);
  assert.ok(!isTrue(get("Service", "DynamicUser")), "no DynamicUser");
  assert.equal(get("Install", "WantedBy"), "multi-user.target");
});

const analyze = which("systemd-analyze");
const AGENT_BIN = "/usr/local/bin/conntrack-cleaner";

machineTest(
  "systemd unit: systemd-analyze verify reports nothing, with a stand-in at the real binary path",
  async () => {
    assert.match(UNIT_TEXT, new RegExp(`^ExecStart=${AGENT_BIN} `, "m"));
    const dir = await Deno.makeTempDir({ prefix: "unit-verify-" });
    try {
      const path = `${dir}/conntrack-cleaner.service`;
      await Deno.writeTextFile(path, UNIT_TEXT); // unchanged: ExecStart names the real path
      // In a private mount namespace, an empty /usr/local/bin with a stand-in
      // executable at the binary's path: the host's file system is not touched.
      const script = [
        "set -e",
        "mount -t tmpfs -o size=1m tmpfs /usr/local/bin",
        `cp /bin/true ${AGENT_BIN}`,
        `exec ${analyze} verify "$1"`,
      ].join("\n");
      const out = await new Deno.Command("unshare", {
        args: ["--mount", "--propagation", "private", "sh", "-c", script, "sh", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(said.trim(), "", "no complaints");
      assert.equal(out.code, 0);
      // Without the stand-in, verify does complain about the binary: the check is real.
      const missing = await new Deno.Command("unshare", {
        args: [
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount -t tmpfs tmpfs /usr/local/bin && exec ${analyze} verify "$1"`,
          "sh",
          path,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const complaint = new TextDecoder().decode(missing.stderr);
      assert.match(complaint, /conntrack-cleaner/, complaint);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  { needs: ["systemd-analyze"] },
);

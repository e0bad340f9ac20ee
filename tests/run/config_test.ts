import assert from "node:assert/strict";
import {
  type ConfigResult,
  describeSettings,
  helpText,
  loadConfig,
  OPTIONS,
  type Settings,
} from "../../lib/run/config.ts";
import { DEFAULT_LISTEN, parseListen } from "../../lib/serve/listen.ts";

const noEnv = () => undefined;
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

function run(r: ConfigResult): Settings {
  assert.equal(r.kind, "run", r.kind === "error" ? r.message : r.kind);
  return (r as { settings: Settings }).settings;
}
function error(r: ConfigResult): string {
  assert.equal(r.kind, "error");
  return (r as { message: string }).message;
}

Deno.test("loadConfig uses the old agent's defaults: 1s and 3", () => {
  const s = run(loadConfig([], noEnv));
  assert.equal(s.intervalMs, 1000);
  assert.equal(s.threshold, 3);
  assert.equal(s.dryRun, false);
  assert.equal(s.procFile, "/proc/net/nf_conntrack");
  assert.equal(s.conntrackBin, "conntrack");
  assert.equal(s.logFormat, "json");
  assert.equal(s.logLevel, "info");
  assert.deepEqual(s.listen, parseListen(DEFAULT_LISTEN));
  assert.equal(s.origin.interval, "default");
});

Deno.test("loadConfig reads the old agent's environment variables", () => {
  const s = run(
    loadConfig(
      [],
      envOf({ CONNTRACK_TABLE_DUMP_FREQUENCY: "1m30s", CONNECTION_RENEWAL_THRESHOLD: "7" }),
    ),
  );
  assert.equal(s.intervalMs, 90_000);
  assert.equal(s.threshold, 7);
  assert.equal(s.origin.interval, "env");
  assert.equal(s.origin.threshold, "env");
});

Deno.test("loadConfig lets a flag win over its environment variable", () => {
  const env = envOf({ CONNTRACK_TABLE_DUMP_FREQUENCY: "5s", CONNECTION_RENEWAL_THRESHOLD: "7" });
  const s = run(loadConfig(["--interval=250ms", "--threshold", "0"], env));
  assert.equal(s.intervalMs, 250);
  assert.equal(s.threshold, 0);
  assert.equal(s.origin.interval, "flag");
});

Deno.test("loadConfig treats an empty environment variable as unset, like the old agent", () => {
  const s = run(loadConfig([], envOf({ CONNECTION_RENEWAL_THRESHOLD: "" })));
  assert.equal(s.threshold, 3);
});

Deno.test("loadConfig refuses bad values and names the setting, the value and the accepted form", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--interval=50ms"], {}, /--interval "50ms": expected a Go duration .* from 100ms/],
    [["--interval=1"], {}, /--interval "1"/],
    [["--interval=2h"], {}, /--interval "2h"/],
    [
      [],
      { CONNTRACK_TABLE_DUMP_FREQUENCY: "1 second" },
      /CONNTRACK_TABLE_DUMP_FREQUENCY "1 second": expected a Go duration/,
    ],
    [
      [],
      { CONNECTION_RENEWAL_THRESHOLD: "-1" },
      /CONNECTION_RENEWAL_THRESHOLD "-1": expected a whole number/,
    ],
    [[], { CONNECTION_RENEWAL_THRESHOLD: "3.5" }, /CONNECTION_RENEWAL_THRESHOLD "3.5"/],
    [["--threshold=03"], {}, /--threshold "03"/],
    [["--threshold=abc"], {}, /--threshold "abc"/],
    [["--log-format=xml"], {}, /--log-format "xml": expected json\|text/],
    [["--log-level=trace"], {}, /--log-level "trace": expected debug\|info\|warn\|error/],
    [["--listen=:"], {}, /--listen ":": expected HOST:PORT/],
    [["--listen=:65536"], {}, /--listen ":65536": expected HOST:PORT/],
    [["--listen=1.2.3.4:99999"], {}, /--listen "1.2.3.4:99999"/],
    [[], { CONNTRACK_CLEANER_LISTEN: "nope" }, /CONNTRACK_CLEANER_LISTEN "nope"/],
    [["--source=ebpf"], {}, /--source "ebpf": expected auto\|events\|netlink\|procfs\|conntrack/],
    [
      ["--resync-interval=5s"],
      {},
      /--resync-interval "5s": expected a Go duration from 10s to 24h/,
    ],
    [[], { CONNTRACK_CLEANER_RESYNC_INTERVAL: "25h" }, /CONNTRACK_CLEANER_RESYNC_INTERVAL "25h"/],
    [["--delete-via=magic"], {}, /--delete-via "magic"/],
    [["--proc-file="], {}, /--proc-file ""/],
  ];
  for (const [args, env, want] of cases) {
    assert.match(error(loadConfig(args, envOf(env))), want, `${args} ${JSON.stringify(env)}`);
  }
});

Deno.test("loadConfig reports every bad setting at once", () => {
  const msg = error(loadConfig(["--interval=x", "--threshold=y"], noEnv));
  assert.match(msg, /--interval "x"/);
  assert.match(msg, /--threshold "y"/);
});

Deno.test("loadConfig refuses unknown flags, stray arguments and other values on --dry-run", () => {
  assert.match(error(loadConfig(["--intervall=1s"], noEnv)), /unknown flag --intervall/);
  assert.match(error(loadConfig(["-F"], noEnv)), /unknown flag -F/);
  assert.match(error(loadConfig(["1s"], noEnv)), /unexpected argument "1s"/);
  assert.match(error(loadConfig(["--dry-run=no"], noEnv)), /dry-run/);
  assert.match(error(loadConfig(["--interval"], noEnv)), /interval/);
});

Deno.test("loadConfig answers --help and --version", () => {
  assert.equal(loadConfig(["--help"], noEnv).kind, "help");
  assert.equal(loadConfig(["-h"], noEnv).kind, "help");
  assert.equal(loadConfig(["--version"], noEnv).kind, "version");
});

Deno.test("loadConfig bounds --max-candidates (env CONNTRACK_CLEANER_MAX_CANDIDATES), default 20000", () => {
  assert.equal(run(loadConfig([], noEnv)).maxCandidates, 20_000);
  assert.equal(
    run(loadConfig([], envOf({ CONNTRACK_CLEANER_MAX_CANDIDATES: "5000" }))).maxCandidates,
    5000,
  );
  for (const bad of ["0", "-5", "1e6", "10000001", "lots"]) {
    assert.match(
      error(loadConfig([`--max-candidates=${bad}`], noEnv)),
      /--max-candidates .*expected a whole number from 1 to 10000000/,
    );
  }
});

Deno.test("loadConfig reads --destinations and --unnated-after (env CONNTRACK_CLEANER_DESTINATIONS, _UNNATED_AFTER)", () => {
  const d = run(loadConfig([], noEnv));
  assert.equal(d.destinations, undefined, "default: every destination");
  assert.equal(d.unnatedAfterMs, 2000, "default 2s");
  const f = run(
    loadConfig(["--destinations=10.96.0.0/12,[2001:db8::/64]:443", "--unnated-after=off"], noEnv),
  );
  assert.equal(f.destinations?.toString(), "10.96.0.0/12,[2001:db8::/64]:443");
  assert.equal(f.unnatedAfterMs, undefined);
  const e = run(loadConfig(
    [],
    envOf({
      CONNTRACK_CLEANER_DESTINATIONS: "192.0.2.10:80",
      CONNTRACK_CLEANER_UNNATED_AFTER: "500ms",
    }),
  ));
  assert.equal(e.destinations?.toString(), "192.0.2.10/32:80");
  assert.equal(e.unnatedAfterMs, 500);
  assert.equal(e.origin["destinations"], "env");
  const all = run(loadConfig(["--destinations=all", "--unnated-after=0s"], noEnv));
  assert.equal(all.destinations, undefined);
  assert.equal(all.unnatedAfterMs, 0);
  const described = describeSettings(f);
  assert.equal(described.destinations, "10.96.0.0/12,[2001:db8::/64]:443");
  assert.equal(described.unnated_after, "off");
});

Deno.test("loadConfig refuses every bad --destinations and --unnated-after form, naming the item", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--destinations="], {}, /--destinations "": empty item.*expected all, or comma-separated/],
    [["--destinations=10.0.0.1/8"], {}, /item "10.0.0.1\/8": host bits set/],
    [["--destinations=10.0.0.0/8,bogus"], {}, /item "bogus": bad IPv4 address/],
    [["--destinations=2001:db8::/64:443"], {}, /goes in brackets/],
    [["--destinations=[10.0.0.1]:80"], {}, /brackets are for IPv6 only/],
    [["--destinations=10.0.0.1:80-70"], {}, /runs backwards/],
    [["--destinations=10.0.0.1:70000"], {}, /from 1 to 65535/],
    [
      ["--destinations=10.96.0.0/12:443,10.0.0.0/8:0"],
      {},
      /^invalid --destinations "10\.96\.0\.0\/12:443,10\.0\.0\.0\/8:0": item "10\.0\.0\.0\/8:0": port 0 is no destination port/,
    ],
    [
      [],
      { CONNTRACK_CLEANER_DESTINATIONS: "10.0.0.0/8:0-80" },
      /CONNTRACK_CLEANER_DESTINATIONS "10\.0\.0\.0\/8:0-80": item "10\.0\.0\.0\/8:0-80": port 0/,
    ],
    [["--destinations=ALL"], {}, /item "ALL"/],
    [
      [],
      { CONNTRACK_CLEANER_DESTINATIONS: "10.0.0.0/33" },
      /CONNTRACK_CLEANER_DESTINATIONS .*prefix/,
    ],
    [
      ["--unnated-after=2"],
      {},
      /--unnated-after "2": expected a Go duration from 0s to 1h, or off/,
    ],
    [["--unnated-after=-1s"], {}, /--unnated-after "-1s"/],
    [["--unnated-after=2h"], {}, /--unnated-after "2h"/],
    [["--unnated-after=no"], {}, /--unnated-after "no"/],
    [[], { CONNTRACK_CLEANER_UNNATED_AFTER: "Off" }, /CONNTRACK_CLEANER_UNNATED_AFTER "Off"/],
  ];
  for (const [args, env, want] of cases) {
    assert.match(error(loadConfig(args, envOf(env))), want, `${args} ${JSON.stringify(env)}`);
  }
});

Deno.test("every flag has an environment variable, read when the flag is absent", () => {
  const sample: Record<string, string> = {
    "delete-via": "conntrack",
    "proc-file": "/tmp/table",
    "conntrack-bin": "/usr/sbin/conntrack",
    "log-format": "text",
    "log-level": "debug",
    "dry-run": "true",
  };
  for (const o of OPTIONS) {
    assert.match(o.env, /^[A-Z][A-Z0-9_]+$/, `--${o.flag} has a variable`);
    const value = sample[o.flag] ?? o.default;
    const s = run(loadConfig([], envOf({ [o.env]: value })));
    assert.equal(s.origin[o.flag], "env", o.env);
  }
  const s = run(
    loadConfig(
      [],
      envOf(Object.fromEntries(OPTIONS.map((o) => [o.env, sample[o.flag] ?? o.default]))),
    ),
  );
  assert.equal(s.deleteVia, "conntrack");
  assert.equal(s.procFile, "/tmp/table");
  assert.equal(s.conntrackBin, "/usr/sbin/conntrack");
  assert.equal(s.logFormat, "text");
  assert.equal(s.logLevel, "debug");
  assert.equal(s.dryRun, true);
});

Deno.test("--dry-run and CONNTRACK_CLEANER_DRY_RUN take the same true or false; the flag wins", () => {
  const env = (v: string) => envOf({ CONNTRACK_CLEANER_DRY_RUN: v });
  assert.equal(run(loadConfig([], env("false"))).dryRun, false);
  assert.equal(run(loadConfig([], env("true"))).dryRun, true);
  assert.equal(run(loadConfig(["--dry-run"], env("false"))).dryRun, true);
  assert.equal(run(loadConfig(["--dry-run=true"], env("false"))).dryRun, true);
  assert.equal(run(loadConfig(["--dry-run=false"], env("true"))).dryRun, false);
  assert.equal(run(loadConfig(["--dry-run=true", "--dry-run=false"], noEnv)).dryRun, false);
  assert.equal(run(loadConfig(["--dry-run=false"], noEnv)).origin["dry-run"], "flag");
  assert.equal(run(loadConfig([], env(""))).dryRun, false, "empty counts as unset");
  for (const bad of ["yes", "1", "TRUE", " true", ""]) {
    if (bad !== "") {
      assert.match(
        error(loadConfig([], env(bad))),
        new RegExp(`CONNTRACK_CLEANER_DRY_RUN "${bad}": expected true or false`),
      );
    }
    // What the variable refuses, the flag refuses too: one parser for both.
    assert.match(
      error(loadConfig([`--dry-run=${bad}`], noEnv)),
      new RegExp(`--dry-run takes no value, =true or =false \\(got "${bad}"\\)`),
    );
  }
});

Deno.test("loadConfig reads --flag VALUE and --flag=VALUE alike; the last one wins", () => {
  const s = run(loadConfig(["--log-level", "warn", "--interval=2s", "--interval", "3s"], noEnv));
  assert.equal(s.logLevel, "warn");
  assert.equal(s.intervalMs, 3000);
  assert.match(error(loadConfig(["--log-level", "--dry-run"], noEnv)), /--log-level needs a value/);
  assert.match(error(loadConfig(["-"], noEnv)), /unexpected argument "-"/);
  assert.match(error(loadConfig(["--constructor=1"], noEnv)), /unknown flag --constructor/);
});

Deno.test("loadConfig reads --listen=:PORT as every address, spelled back as :PORT, and says so in --help", () => {
  const s = run(loadConfig(["--listen=:10395"], noEnv));
  assert.deepEqual(s.listen, { hostname: "::", port: 10395, all: true });
  assert.equal(describeSettings(s).listen, ":10395");
  const e = run(loadConfig([], envOf({ CONNTRACK_CLEANER_LISTEN: ":9000" })));
  assert.deepEqual(e.listen, { hostname: "::", port: 9000, all: true });
  assert.match(helpText(), /:PORT for all IPv4 and\s+IPv6 addresses/);
  assert.match(helpText(), /--dry-run\[=true\|false\]/);
});

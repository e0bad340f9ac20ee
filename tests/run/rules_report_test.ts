import assert from "node:assert/strict";
import { describeRules } from "../../lib/run/rules_report.ts";

Deno.test("describeRules warns when only the renewal rule runs on a kernel that does not renew", () => {
  const off = describeRules({
    rules: ["renewals"],
    providers: [],
    release: "6.18.44",
    threshold: 3,
    unnatedAfter: "off",
    destinations: "all",
    synSentTimeout: undefined,
  });
  assert.deepEqual(off.fields.rules, ["renewals"]);
  assert.equal(off.warnings.length, 1);
  assert.match(off.warnings[0]!, /will find nothing here/);
  const old = describeRules({
    rules: ["renewals"],
    providers: [],
    release: "5.4.100",
    threshold: 3,
    unnatedAfter: "off",
    destinations: "all",
    synSentTimeout: undefined,
  });
  assert.deepEqual(old.warnings, []);
  assert.equal(old.fields.kernel_renews_syn_sent, "yes");
  const both = describeRules({
    rules: ["renewals", "unnated"],
    providers: ["destinations"],
    release: "6.18.44",
    threshold: 3,
    unnatedAfter: "2s",
    destinations: "10.96.0.0/12",
    synSentTimeout: 120,
  });
  assert.deepEqual(both.fields.rules, ["renewals", "unnated"]);
  assert.deepEqual(both.fields.nated_now_from, ["destinations"]);
  assert.equal(both.fields.syn_sent_timeout_s, 120);
  assert.deepEqual(both.warnings, []);
  const noTimeout = describeRules({
    rules: ["renewals", "unnated"],
    providers: ["table"],
    release: "6.18.44",
    threshold: 3,
    unnatedAfter: "2s",
    destinations: "all",
    synSentTimeout: "cannot read /x: No such file",
  });
  assert.deepEqual(noTimeout.fields.nated_now_from, ["table"]);
  assert.equal(off.fields.nated_now_from, "off");
  assert.match(noTimeout.warnings[0]!, /time since it was first seen/);
});

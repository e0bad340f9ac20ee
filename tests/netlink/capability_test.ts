import assert from "node:assert/strict";
import { checkEvents } from "../../lib/netlink/capability.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";

const opened = () => {
  let closed = 0;
  return { open: () => ({ close: () => void closed++ }), closed: () => closed };
};

Deno.test("checkEvents: off when the namespace turned events off, whatever the socket says", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/nf_conntrack_events`;
    await Deno.writeTextFile(file, "0\n");
    const s = opened();
    const r = await checkEvents({ sysctlFile: file, open: s.open });
    assert.deepEqual(r, { ok: false, reason: `conntrack events are off (${file} is 0)` });
    await Deno.writeTextFile(file, "2\n");
    assert.deepEqual(await checkEvents({ sysctlFile: file, open: s.open }), { ok: true });
    assert.equal(s.closed(), 1, "the probe socket is closed");
    // No such switch (older kernels): events are on by default.
    assert.deepEqual(await checkEvents({ sysctlFile: `${dir}/absent`, open: s.open }), {
      ok: true,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkEvents: a socket that cannot join the group or attach the filter says why", async () => {
  const r = await checkEvents({
    sysctlFile: "/nonexistent/nf_conntrack_events",
    open: () => {
      throw new ErrnoError(Errno.EPERM, "setsockopt(NETLINK_ADD_MEMBERSHIP, 1)");
    },
  });
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : "", /NETLINK_ADD_MEMBERSHIP/);
});

"""A fleet of mounts of one tenant shares the tenant's call budget through Redis
(issue 12), end to end: real mounts of the real binary, the mock API (which enforces
the three-call limit and counts the most calls in flight), and a real redis-server
started here on a free port without persistence.

- two mounts, 24 names read in parallel across both at a fixed latency: at most 3
  calls in flight, no "exceeded", and about ceil(24/3) latencies of wall time;
- a foreign client holding two slots: both mounts learn the budget of one, nothing
  fails;
- a mount killed with SIGKILL while it holds leases: the other finishes within one
  lease time plus its own calls;
- Redis stopped mid-batch: reads go on at the fallback share; Redis back: the shared
  budget is back;
- the shared cache (redis_cache): two mounts opening the same recordings make one
  call each, Redis holds neither a name nor a byte nor the key, a tampered value is
  rejected and fetched again, and a recording past redis_cache_max is not shared.
"""

import base64
import errno
import math
import os
import shutil
import signal
import subprocess
import threading
import time

import harness

wait_until = harness.wait_until
LATENCY = 0.4


class Reader(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.data, self.errno = path, None, None
        self.start()

    def run(self):
        try:
            with open(self.path, "rb") as f:
                self.data = f.read()
        except OSError as e:
            self.errno = e.errno


def join_all(readers, timeout, what):
    deadline = time.monotonic() + timeout
    for r in readers:
        r.join(max(0.0, deadline - time.monotonic()))
        if r.is_alive():
            raise AssertionError("%s: %s still blocked after %g s" % (what, r.path, timeout))


class FleetTest(harness.RedisTestCase):

    def setUp(self):
        super().setUp()
        self.redis = harness.Redis()

    def fleet_mount(self, *options, **kw):
        m = self.mount("redis=" + self.redis.url, "nolisting", *options, **kw)
        wait_until(lambda: m.counter("redis_connected") == 1, 10, "the mount to reach Redis")
        return m

    def names(self, prefix, count, size=5_000):
        names = ["%s-%03d.WAV" % (prefix, i) for i in range(count)]
        for n in names:
            self.mock.synthetic(n, size)
        return names

    def read_across(self, mounts, names, timeout=120):
        readers = [Reader(mounts[i % len(mounts)].path(n)) for i, n in enumerate(names)]
        join_all(readers, timeout, "reads across the fleet")
        for r in readers:
            name = os.path.basename(r.path)
            self.assertIsNone(r.errno, "%s failed with %s" % (name, r.errno and errno.errorcode[r.errno]))
            self.assertEqual(r.data, self.mock.raw(name), name)
        return readers

    # a ---------------------------------------------------------------------------
    def test_a_two_mounts_share_three_slots(self):
        names = self.names("fleet", 24)
        a, b = self.fleet_mount(), self.fleet_mount()
        self.mock.config(latency=LATENCY)
        self.mock.reset()
        start = time.monotonic()
        self.read_across([a, b], names)
        wall = time.monotonic() - start
        s = self.mock.stats()
        ideal = math.ceil(24 / 3) * LATENCY
        waits = a.counter("lease_waits") + b.counter("lease_waits")
        print("two mounts x 24 names at %g s: %.2f s (ideal %.2f s), max in flight %d, "
              "%d exceeded, %d lease waits" % (LATENCY, wall, ideal, s["max_in_flight"],
                                               s["exceeded"], waits))
        self.assertLessEqual(s["max_in_flight"], 3)
        self.assertEqual(s["exceeded"], 0)
        self.assertEqual({n: s["calls"].get(n) for n in names}, {n: 1 for n in names})
        # Never faster than three at a time; no idle slot for long either.
        self.assertGreaterEqual(wall, ideal * 0.95)
        self.assertLessEqual(wall, ideal * 1.6 + 1.0)
        self.assertGreater(waits, 0, "no call ever waited for a lease")
        for m in (a, b):
            self.assertEqual(m.counter("redis_fallback_calls"), 0)
            self.assertEqual(m.counter("lease_lapses"), 0)
            self.assertEqual(m.counter("exceeded_replies"), 0)
        # What anyone who can reach Redis sees: tickets and numbers under the tenant's
        # hash tag, never the key, a name or a recording's bytes.
        dump = self.redis.dump()
        prefix = "euphoriafs:{%s}:" % harness.TENANT
        self.assertIn(prefix + "ticket", dump)
        self.assertIn(prefix + "budget", dump)
        self.assertEqual([k for k in dump if not k.startswith(prefix)], [])
        text = "\n".join("%s %s" % kv for kv in dump.items())
        for secret in [harness.KEY, "fleet-", ".WAV", "RIFF"]:
            self.assertNotIn(secret, text)

    # b ---------------------------------------------------------------------------
    def test_b_a_foreign_client_lowers_the_budget_for_both(self):
        names = self.names("foreign", 24)
        a, b = self.fleet_mount(), self.fleet_mount()
        self.mock.config(latency=0.2)
        self.mock.reset()
        self.mock.hold(2, 6.0)
        lowest = {id(a): 3, id(b): 3}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for m in (a, b):
                    lowest[id(m)] = min(lowest[id(m)], m.counter("shared_budget"))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            self.read_across([a, b], names)
        finally:
            stop.set()
            sampler.join(5)
        s = self.mock.stats()
        print("foreign client holding 2 slots: %d exceeded, lowest budgets %d and %d, "
              "max in flight %d" % (s["exceeded"], lowest[id(a)], lowest[id(b)], s["max_in_flight"]))
        self.assertEqual(lowest[id(a)], 1, "mount a never learned the smaller budget")
        self.assertEqual(lowest[id(b)], 1, "mount b never learned the smaller budget")
        self.assertGreaterEqual(s["exceeded"], 1, "the hold never refused a call")
        # The fleet pauses together after each "exceeded": a few a second at most, not
        # every waiting call trying on its own.
        self.assertLessEqual(s["exceeded"], 20)
        self.assertLessEqual(s["max_in_flight"], 3)
        for m in (a, b):
            self.assertEqual(m.counter("errors_eagain"), 0)
            self.assertEqual(m.counter("errors_eio"), 0)

    # c ---------------------------------------------------------------------------
    def test_c_a_killed_mount_frees_its_slots_within_a_lease(self):
        lease = 3
        held = self.names("killed", 3)
        mine = self.names("survivor", 6)
        a = self.fleet_mount("redis_lease=%d" % lease)
        b = self.fleet_mount("redis_lease=%d" % lease)
        # a's calls take 2 s at the API: a holds three leases when it dies.
        self.mock.config(name_latency={n: 2.0 for n in held}, latency=0.1)
        self.mock.reset()
        doomed = [Reader(a.path(n)) for n in held]
        wait_until(lambda: self.mock.stats()["in_flight"] == 3, 10, "a to hold three calls")
        os.kill(a.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        self.read_across([b], mine, timeout=60)
        took = time.monotonic() - killed_at
        own = math.ceil(len(mine) / 3) * 0.1
        print("after SIGKILL of a mount holding 3 leases of %d s: the other read %d names "
              "in %.2f s" % (lease, len(mine), took))
        # Its leases were reclaimed, not waited for for ever; the bound is one lease
        # plus b's own calls, with room for a busy machine.
        self.assertLessEqual(took, lease + own + 2.5)
        self.assertEqual(b.counter("errors_eagain"), 0)
        self.assertEqual(b.counter("redis_fallback_calls"), 0)
        for r in doomed:
            r.join(10)

    # d ---------------------------------------------------------------------------
    def test_d_redis_gone_then_back(self):
        first = self.names("outage", 24)
        second = self.names("rejoin", 24)
        # a in the foreground, so that its log is a file the test reads.
        a, b = self.fleet_mount(foreground=True), self.fleet_mount()
        self.mock.config(latency=0.3)
        self.mock.reset()
        readers = [Reader((a, b)[i % 2].path(n)) for i, n in enumerate(first)]
        wait_until(lambda: sum(self.mock.stats()["calls"].values()) >= 6, 20, "the batch to start")
        self.redis.kill()
        join_all(readers, 120, "reads while Redis is down")
        for r in readers:
            name = os.path.basename(r.path)
            self.assertIsNone(r.errno, "%s failed with %s" % (name, r.errno and errno.errorcode[r.errno]))
            self.assertEqual(r.data, self.mock.raw(name))
        fallback = a.counter("redis_fallback_calls") + b.counter("redis_fallback_calls")
        s = self.mock.stats()
        print("Redis killed mid-batch: %d calls on the fallback share, %d exceeded, "
              "max in flight %d" % (fallback, s["exceeded"], s["max_in_flight"]))
        self.assertGreater(fallback, 0, "no call went on at the fallback share")
        self.assertEqual(a.counter("redis_connected"), 0)
        self.assertEqual(b.counter("redis_connected"), 0)
        for m in (a, b):
            self.assertEqual(m.counter("errors_eagain"), 0)
            self.assertEqual(m.counter("errors_eio"), 0)
        # One warning per outage, not one per call.
        with open(a.log) as f:
            self.assertEqual(f.read().count("working on a local share"), 1)

        self.redis.start()
        for m in (a, b):
            wait_until(lambda m=m: m.counter("redis_connected") == 1, 15, "the mount to rejoin")
        with open(a.log) as f:
            self.assertIn("the shared budget is back", f.read())
        before = a.counter("redis_fallback_calls") + b.counter("redis_fallback_calls")
        self.mock.reset()
        start = time.monotonic()
        self.read_across([a, b], second)
        wall = time.monotonic() - start
        s = self.mock.stats()
        print("Redis back: 24 names in %.2f s, max in flight %d, %d exceeded"
              % (wall, s["max_in_flight"], s["exceeded"]))
        self.assertLessEqual(s["max_in_flight"], 3)
        self.assertEqual(s["exceeded"], 0)
        self.assertEqual(a.counter("redis_fallback_calls") + b.counter("redis_fallback_calls"), before)
        # Two mounts on their fallback share would take 12 latencies; shared, 8.
        self.assertLessEqual(wall, 8 * 0.3 * 1.6 + 1.0)


    # e ---------------------------------------------------------------------------
    def test_e_the_start_up_probe_waits_for_a_lease(self):
        # A foreign client holds all three slots, with leases a minute long in Redis's
        # own clock. A mount's probe is an API call too: it must wait its turn.
        def cli(*args):
            return subprocess.run(["redis-cli", "-p", str(self.redis.port), *args],
                                  capture_output=True, text=True, check=True, timeout=30).stdout
        now_ms = int(cli("TIME").split()[0]) * 1000
        holders = "euphoriafs:{%s}:holders" % harness.TENANT
        for i in range(3):
            cli("ZADD", holders, str(now_ms + 60_000), "foreign-%d" % i)
        self.mock.reset()
        mounted = {}

        def mount():
            try:
                # Not self.mount(), which resets the mock's counters after mounting.
                mounted["m"] = harness.Mount(self.mock, ("redis=" + self.redis.url, "nolisting"))
                self.mounts.append(mounted["m"])
            except Exception as e:  # noqa: BLE001 (reported by the test below)
                mounted["error"] = e

        t = threading.Thread(target=mount, daemon=True)
        t.start()
        t.join(2.0)
        self.assertTrue(t.is_alive(), "the mount did not wait for a slot: %r" % mounted)
        self.assertEqual(self.mock.stats()["total_calls"], 0, "the probe called without a lease")
        cli("DEL", holders)
        t.join(30)
        self.assertFalse(t.is_alive(), "the mount never started after the slots came free")
        self.assertNotIn("error", mounted)
        self.assertEqual(self.mock.stats()["total_calls"], 1)
        probes = [n for n in self.mock.stats()["calls"] if n.startswith("euphoriafs-probe-")]
        self.assertEqual(len(probes), 1, self.mock.stats()["calls"])
        self.assertEqual(mounted["m"].counter("redis_fallback_calls"), 0)


    # f ---------------------------------------------------------------------------
    def test_f_a_fleet_busy_past_busy_timeout_is_eagain(self):
        self.names("patience", 1)
        m = self.fleet_mount("busy_timeout=2")
        holders = "euphoriafs:{%s}:holders" % harness.TENANT
        out = subprocess.run(["redis-cli", "-p", str(self.redis.port), "TIME"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        now_ms = int(out.split()[0]) * 1000
        for i in range(3):
            self.redis.command("ZADD", holders, str(now_ms + 60_000), "foreign-%d" % i)
        began = time.monotonic()
        err = harness.errno_of(os.stat, m.path("patience-000.WAV"))
        took = time.monotonic() - began
        print("a fleet busy for good: EAGAIN after %.2f s (busy_timeout=2)" % took)
        self.assertEqual(err, errno.EAGAIN)
        self.assertGreaterEqual(took, 2.0)
        self.assertEqual(self.mock.stats()["total_calls"], 0)
        self.assertEqual(m.counter("errors_eagain"), 1)
        # Not cached as an answer: with the slots free, the name is fetched.
        self.redis.command("DEL", holders)
        with open(m.path("patience-000.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("patience-000.WAV"))



    # g ---------------------------------------------------------------------------
    def cache_entries(self):
        prefix = "euphoriafs:{%s}:cache:" % harness.TENANT
        return {k: v for k, v in self.redis.dump_bytes().items() if k.startswith(prefix)}

    def test_g_the_shared_cache_one_call_for_two_mounts(self):
        # Two of them span three 1 MiB chunks each.
        names = self.names("shared", 4, size=5_000) + self.names("sharedbig", 2, size=2_500_000)
        a, b = self.fleet_mount("redis_cache"), self.fleet_mount("redis_cache")
        self.mock.config(latency=0.3)
        self.mock.reset()
        readers = [Reader(m.path(n)) for n in names for m in (a, b)]
        join_all(readers, 120, "both mounts opening the same names")
        for r in readers:
            name = os.path.basename(r.path)
            self.assertIsNone(r.errno, "%s failed with %s" % (name, r.errno and errno.errorcode[r.errno]))
            self.assertEqual(r.data, self.mock.raw(name), name)
        s = self.mock.stats()
        hits = a.counter("redis_cache_hits") + b.counter("redis_cache_hits")
        waits = a.counter("redis_cache_waits") + b.counter("redis_cache_waits")
        print("two mounts x %d names with redis_cache: %d calls, %d shared hits, %d waits" %
              (len(names), sum(s["calls"].get(n, 0) for n in names), hits, waits))
        self.assertEqual({n: s["calls"].get(n) for n in names}, {n: 1 for n in names})
        self.assertEqual(hits, len(names))
        self.assertEqual(a.counter("redis_cache_stores") + b.counter("redis_cache_stores"), len(names))
        for m in (a, b):
            self.assertEqual(m.counter("redis_cache_rejects"), 0)
            self.assertEqual(m.counter("exceeded_replies"), 0)

        # What anyone who can reach Redis sees: no name, no byte of a recording (not
        # its header, not a window from its middle, not its base64), no key.
        dump = self.redis.dump_bytes()
        prefix = "euphoriafs:{%s}:" % harness.TENANT
        self.assertEqual([k for k in dump if not k.startswith(prefix)], [])
        entries = self.cache_entries()
        # One entry per name, plus 1 + 1 + 1 + 1 + 3 + 3 chunks.
        self.assertEqual(len(entries), len(names) + 10, sorted(entries))
        blob = b"\n".join(k.encode() + b" " + v for k, v in dump.items())
        # Each needle long enough that random bytes never hold it by chance.
        needles = [harness.KEY.encode(), b"shared-", b"sharedbig-", b"WAVEfmt "]
        for n in names:
            raw = self.mock.raw(n)
            needles += [n.encode(), raw[:12], raw[len(raw) // 2:len(raw) // 2 + 24], raw[-24:],
                        base64.b64encode(raw[1000:1048])]
        for needle in needles:
            self.assertNotIn(needle, blob)
        # Stored for what is left of the API's 30 seconds from the reply, never more.
        for k in entries:
            pttl = int(self.redis.command("PTTL", k).lstrip(":"))
            self.assertGreater(pttl, 0, k)
            self.assertLessEqual(pttl, 30_000, k)

    # h ---------------------------------------------------------------------------
    def test_h_a_tampered_value_is_rejected_and_fetched_again(self):
        name = self.names("tamper", 1, size=2_500_000)[0]
        a = self.fleet_mount("redis_cache")
        with open(a.path(name), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw(name))
        # A reader may see the last byte a moment before the mount has shared it.
        wait_until(lambda: a.counter("redis_cache_stores") == 1, 10, "the mount to share it")
        chunks = [k for k in self.cache_entries() if k.count(":") == 5]
        self.assertEqual(len(chunks), 3, sorted(self.cache_entries()))
        # Sixteen bytes of the middle chunk overwritten in place, its PX kept.
        self.assertEqual(self.redis.command("SETRANGE", sorted(chunks)[1], "5000", "tampered-by-test"),
                         ":%d" % (1024 * 1024 + 28))
        b = self.fleet_mount("redis_cache")
        self.mock.reset()
        with open(b.path(name), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw(name))
        self.assertEqual(self.mock.stats()["calls"].get(name), 1, "the tampered copy was not fetched again")
        self.assertEqual(b.counter("redis_cache_rejects"), 1)
        self.assertEqual(b.counter("redis_cache_hits"), 0)
        wait_until(lambda: b.counter("redis_cache_stores") == 1, 10, "the good copy to be shared")
        # The good copy replaced it: a third mount is served by the fleet.
        c = self.fleet_mount("redis_cache")
        self.mock.reset()
        with open(c.path(name), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw(name))
        self.assertEqual(self.mock.stats()["calls"].get(name), None)
        self.assertEqual(c.counter("redis_cache_hits"), 1)

    # i ---------------------------------------------------------------------------
    def test_i_a_recording_past_redis_cache_max_is_not_shared(self):
        name = self.names("huge", 1, size=3_000_000)[0]
        a = self.fleet_mount("redis_cache", "redis_cache_max=1M")
        b = self.fleet_mount("redis_cache", "redis_cache_max=1M")
        self.mock.reset()
        for m in (a, b):
            with open(m.path(name), "rb") as f:
                self.assertEqual(f.read(), self.mock.raw(name))
        self.assertEqual(self.mock.stats()["calls"].get(name), 2)
        for m in (a, b):
            self.assertEqual(m.counter("redis_cache_stores"), 0)
            self.assertEqual(m.counter("redis_cache_hits"), 0)
        # Only the sealed "not shared" mark, no chunk of it.
        self.assertEqual([k.count(":") for k in self.cache_entries()], [3])

if __name__ == "__main__":
    harness.main()

"""Faults, outages, a full cache disk, load and a soak: the mount returns a clean errno
or the right bytes, never wrong bytes, never caches a failure as data, and stays up."""

import errno
import hashlib
import os
import random
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import harness

SOAK_SECONDS = float(os.environ.get("EUPHORIA_SOAK_SECONDS", "120"))


def outcome(path):
    """The bytes of a file, or the errno reading it gave."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return e.errno


def open_fds(pid):
    """The daemon's descriptors, by what they point at."""
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            fds[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return fds


class ReliabilityTest(harness.E2ETestCase):

    def expect_clean_failure_then_recovery(self, m, name, fault, allowed):
        """One fault: a clean errno while it lasts, the right bytes once it is gone."""
        expected = self.mock.raw(name)
        self.mock.fault(name, fault)
        got = outcome(m.path(name))
        self.assertIn(got, allowed, "%s gave %r" % (fault, got if isinstance(got, int) else "bytes"))
        self.mock.clear_faults()
        self.assertEqual(outcome(m.path(name)), expected, "after " + fault)

    def test_every_reply_fault(self):
        size = 30_000
        # A permanently busy tenant gives EAGAIN once busy_timeout runs out.
        m = self.mount("retries=1", "timeout=2", "busy_timeout=1")
        faults = [
            ("error:Authorization Failed", {errno.EACCES}),
            ("error:Permission Denied", {errno.EACCES}),
            ("error:Concurrent API Calls Exceeded", {errno.EAGAIN}),
            ("error:I'm sorry, connection to one or more of the databases failed", {errno.EIO}),
            ("error:Sip Server not found", {errno.EIO}),
            ("error:Input XML not loaded", {errno.EPROTO}),
            ("error:No Document Element", {errno.EPROTO}),
            ("error:No Action Defined", {errno.EPROTO}),
            ("error:Action Name Not Found", {errno.EPROTO}),
            ("error:A brand new failure", {errno.EIO}),
            ("http:500", {errno.EIO}),
            ("http:503", {errno.EIO}),
            ("http:429", {errno.EIO}),
            ("html", {errno.EIO}),
            ("garbage", {errno.EIO}),
            ("corrupt", {errno.EIO}),
            ("doctype", {errno.EIO}),
            ("stall:6", {errno.ETIMEDOUT}),
            ("reset", {errno.EIO}),
        ]
        # Ten truncation points: in the headers, the XML prologue, the base64 and
        # just after </audioData> (the reply ends "</audioData></CallRecording></XML>").
        body = 40_000 + 130
        for cut in (0, 1, 40, 90, 150, 2_000, 20_001, 39_999, body - 40):
            faults.append(("truncate:%d" % cut, {errno.EIO}))
        faults.append(("truncate:-30", {errno.EIO}))
        for i, (fault, allowed) in enumerate(faults):
            name = "fault-%02d.WAV" % i
            self.mock.synthetic(name, size)
            with self.subTest(fault=fault):
                self.expect_clean_failure_then_recovery(m, name, fault, allowed)
        print("reply faults tried: %d" % len(faults))
        # Errors were never served as data, and the daemon is alive.
        self.assertTrue(os.path.exists("/proc/%d" % m.pid))

    def test_error_strings_in_both_reply_shapes(self):
        m = self.mount("retries=0")
        self.mock.config(with_status=True, shape="flat", wrap=76)
        self.mock.synthetic("flat.WAV", 5_000)
        self.assertEqual(outcome(m.path("flat.WAV")), self.mock.raw("flat.WAV"))
        self.mock.fault("flat2.WAV", "error:Authorization Failed")
        self.assertEqual(outcome(m.path("flat2.WAV")), errno.EACCES)
        self.mock.config(with_status=False, shape="callrecording", wrap=0)

    def test_outage_mid_transfer_and_recovery(self):
        info = self.mock.synthetic("outage.WAV", 20 * 1024 * 1024)
        self.mock.synthetic("later.WAV", 1000)
        m = self.mount("retries=1", "timeout=3", "mem_cache_size=4M")
        self.mock.fault("outage.WAV", "stall:30")
        reader = ThreadPoolExecutor(1).submit(outcome, m.path("outage.WAV"))
        time.sleep(1.0)
        self.mock.stop()  # killed while the reply is half sent
        got = reader.result(timeout=60)
        self.assertIn(got, (errno.EIO, errno.ETIMEDOUT))
        self.mock.restart(up=True)
        self.mock.synthetic("outage.WAV", 20 * 1024 * 1024)
        self.mock.synthetic("later.WAV", 1000)
        data = outcome(m.path("outage.WAV"))
        self.assertEqual(hashlib.sha256(data).hexdigest(), info["sha256"])
        self.assertEqual(len(outcome(m.path("later.WAV"))), 1000)
        self.assertEqual(os.listdir(m.cache_dir), [] if len(data) < 512 << 10 else os.listdir(m.cache_dir))

    def test_full_cache_disk(self):
        work = tempfile.mkdtemp(prefix="euphoria-tmpfs-")
        cache = os.path.join(work, "cache")
        os.makedirs(cache)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", cache], check=True)
        try:
            big = self.mock.synthetic("toobig.WAV", 5 * 1024 * 1024)
            self.mock.synthetic("fits.WAV", 1 * 1024 * 1024)
            self.mock.synthetic("small.WAV", 10_000)
            m = self.mount("cache_dir=" + cache, "mem_cache_size=1M", "retries=0")
            self.assertEqual(outcome(m.path("toobig.WAV")), errno.ENOSPC)
            self.assertEqual(os.listdir(cache), [])  # nothing partial left
            self.assertEqual(outcome(m.path("fits.WAV")), self.mock.raw("fits.WAV"))
            self.assertEqual(outcome(m.path("small.WAV")), self.mock.raw("small.WAV"))
            # Not cached as a failure: it is asked for again, and fails again cleanly.
            self.assertEqual(outcome(m.path("toobig.WAV")), errno.ENOSPC)
            self.assertEqual(self.mock.calls("toobig.WAV"), 2)
            self.assertTrue(os.path.exists("/proc/%d" % m.pid))
            self.assertEqual(big["size"], 5 * 1024 * 1024)
            m.unmount()
        finally:
            subprocess.run(["umount", cache], check=False)
            subprocess.run(["rm", "-rf", work], check=False)

    def test_load_200_names_4_readers_each(self):
        names = ["load-%03d.WAV" % i for i in range(200)]
        digests = {}
        for i, n in enumerate(names):
            digests[n] = self.mock.synthetic(n, 20_000 + i * 97)["sha256"]
        m = self.mount()
        self.mock.config(latency=0.2)
        self.mock.reset()
        start = time.monotonic()
        jobs = [n for n in names for _ in range(4)]
        random.Random(1).shuffle(jobs)

        def read(n):
            return n, hashlib.sha256(outcome(m.path(n))).hexdigest()

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(read, jobs))
        wall = time.monotonic() - start
        bad = [n for n, d in results if d != digests[n]]
        self.assertEqual(bad, [])
        s = self.mock.stats()
        self.assertLessEqual(s["max_in_flight"], 3)
        self.assertEqual(s["exceeded"], 0)
        self.assertEqual(s["total_calls"], 200)  # 4 readers each, one call a name
        rss_mb = harness.rss_peak_kb(m.pid) / 1024
        print("load: 800 reads of 200 names in %.1f s, max in flight %d, daemon peak RSS %.1f MB"
              % (wall, s["max_in_flight"], rss_mb))
        if not harness.SANITIZED:
            self.assertLess(rss_mb, 100)

    def test_soak(self):
        names = ["soak-%02d.WAV" % i for i in range(40)]
        digests = {n: self.mock.synthetic(n, random.Random(i).randint(1_000, 600_000))["sha256"]
                   for i, n in enumerate(names)}
        m = self.mount("cache_ttl=2", "mem_cache_size=2M", "retries=1", "timeout=2")
        # Warm up to the steady state: three warm connections, then an empty cache
        # (expired entries are dropped on the next access, here a readdir).
        self.mock.config(latency=0.3)
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda n: outcome(m.path(n)), names[:6]))
        self.mock.config(latency=0.02)
        time.sleep(2.5)
        os.listdir(m.dir)
        fds_before = open_fds(m.pid)
        rng = random.Random(7)
        faults = ["http:503", "error:Sip Server not found", "truncate:500", "corrupt", "reset",
                  "error:Concurrent API Calls Exceeded", "html"]
        counts = {"reads": 0, "misses": 0, "faults": 0, "wrong": 0}
        wrongs = []

        def describe(name, got):
            if isinstance(got, int):
                return "%s: %s" % (name, errno.errorcode.get(got, got))
            return "%s: %d bytes, sha256 %s" % (name, len(got), hashlib.sha256(got).hexdigest()[:12])
        lock = threading.Lock()
        deadline = time.monotonic() + SOAK_SECONDS

        def worker(seed):
            r = random.Random(seed)
            while time.monotonic() < deadline:
                roll = r.random()
                if roll < 0.15:
                    got = outcome(m.path("missing-%d.WAV" % r.randint(0, 50)))
                    key = "misses" if got == errno.ENOENT else "wrong"
                else:
                    n = r.choice(names)
                    got = outcome(m.path(n))
                    if isinstance(got, int):
                        key = "faults" if got in (errno.EIO, errno.EAGAIN, errno.ETIMEDOUT) else "wrong"
                    else:
                        key = "reads" if hashlib.sha256(got).hexdigest() == digests[n] else "wrong"
                with lock:
                    counts[key] += 1
                    if key == "wrong":
                        wrongs.append(describe(n if roll >= 0.15 else "missing", got))

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(worker, s) for s in range(6)]
            while time.monotonic() < deadline:
                self.mock.fault(rng.choice(names), rng.choice(faults), times=1)
                time.sleep(0.3)
            for f in futures:
                f.result()
        self.mock.clear_faults()
        self.mock.config(latency=0)
        time.sleep(3)  # let cached entries expire
        for n in names:  # everything reads right afterwards
            self.assertEqual(hashlib.sha256(outcome(m.path(n))).hexdigest(), digests[n])
        time.sleep(2.5)
        os.listdir(m.dir)
        fds_after = open_fds(m.pid)
        s = self.mock.stats()
        print("soak %.0f s: %s, max in flight %d, fds %d -> %d"
              % (SOAK_SECONDS, counts, s["max_in_flight"], len(fds_before), len(fds_after)))
        self.assertEqual(counts["wrong"], 0, "; ".join(wrongs[:10]))
        self.assertGreater(counts["reads"], 100)
        self.assertLessEqual(s["max_in_flight"], 3)
        # libfuse keeps a splice pipe pair per worker thread, and worker threads come
        # and go (at most 16): those are bounded, not ours. Everything else, cache
        # files, connections and their wake-up pairs, must not grow.
        def ours(fds):
            return sorted(v for v in fds.values() if not v.startswith("pipe:"))
        self.assertLessEqual(len(ours(fds_after)), len(ours(fds_before)),
                             "before: %s\nafter: %s" % (ours(fds_before), ours(fds_after)))
        self.assertLessEqual(len(fds_after) - len(ours(fds_after)), 2 * 16)


if __name__ == "__main__":
    harness.main()

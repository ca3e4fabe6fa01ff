"""Sharing the tenant, and never tying up the mount (issue 10), end to end: the real
binary on a real FUSE mount against the mock API over TLS.

- a foreign client holding the tenant's three call slots is backpressure: reads wait
  and succeed, the whole mount backs off (few "exceeded" replies) and lowers its
  budget, then climbs back; busy_timeout bounds the wait with EAGAIN;
- with 100 cold names pending, the root counters, a cached getattr and a read of an
  open file answer at once, and Ctrl-C on a queued cat returns at once;
- a reader under a periodic timer signal, and an interrupted lookup retried at once,
  cost one download;
- cache_ttl=0, or a download slower than cache_ttl: one cp, one call;
- SIGTERM with queued downloads exits within about a second and leaves no files;
- max_pending bounds the requests waiting for downloads.
"""

import ctypes
import errno
import os
import signal
import struct
import subprocess
import sys
import threading
import time

import harness

wait_until = harness.wait_until

# statx(2) with AT_STATX_FORCE_SYNC: the kernel asks the daemon (FUSE_GETATTR) instead
# of answering from its attribute cache, so the daemon's own latency is measured.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                        ctypes.c_void_p]
AT_FDCWD = -100
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7FF
STATX_SIZE_OFFSET = 40  # struct statx: mask, blksize, attributes, nlink, uid, gid, mode, ino, size


def statx_size_sync(path):
    buf = ctypes.create_string_buffer(256)
    if _libc.statx(AT_FDCWD, os.fsencode(path), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return struct.unpack_from("<Q", buf.raw, STATX_SIZE_OFFSET)[0]


def timed(fn, *args):
    start = time.monotonic()
    result = fn(*args)
    return time.monotonic() - start, result


errno_of = harness.errno_of


class Reader(threading.Thread):
    """open + read of one file in a daemon thread, so that a reader stuck in the
    kernel can never keep the test process from exiting."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.data = None
        self.errno = None
        self.started_at = time.monotonic()
        self.ended_at = None
        self.start()

    def run(self):
        try:
            with open(self.path, "rb") as f:
                self.data = f.read()
        except OSError as e:
            self.errno = e.errno
        self.ended_at = time.monotonic()

    def finished(self, timeout):
        self.join(timeout)
        return not self.is_alive()


def join_all(readers, timeout, what):
    deadline = time.monotonic() + timeout
    for r in readers:
        if not r.finished(max(0.0, deadline - time.monotonic())):
            raise AssertionError("%s: %s still blocked after %g s" % (what, r.path, timeout))


def wchan(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def blocked_in_fuse(pid):
    """True while pid sleeps in the kernel waiting for a FUSE reply."""
    w = wchan(pid)
    return "fuse" in w or "request_wait_answer" in w


# A child that reads a file under a 0.4 s interval timer with a no-op SIGALRM handler
# (no SA_RESTART): its stat, open and read are interrupted over and over. Python
# retries open and read on EINTR itself (PEP 475); stat it does not, so the child
# retries it, as a Go program's runtime does for every call. The parent bounds it.
TIMER_READER = r"""
import os, signal, sys
signal.signal(signal.SIGALRM, lambda *_: None)
signal.setitimer(signal.ITIMER_REAL, 0.4, 0.4)
path = sys.argv[1]
interrupted = 0
while True:
    try:
        os.stat(path)
        break
    except InterruptedError:
        interrupted += 1
with open(path, "rb") as f:
    data = f.read()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
sys.stderr.write("stat interrupted %d times\n" % interrupted)
sys.stdout.buffer.write(data)
"""


class SharingTest(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.children = []

    def tearDown(self):
        try:
            self.mock.clear_holds()
            for p in self.children:
                if p.poll() is None:
                    p.kill()
        finally:
            super().tearDown()
            # A daemon that outlived its unmount (a failed test, readers stuck in the
            # kernel) is killed: that aborts the connection and frees every reader.
            for m in self.mounts:
                if m.pid and os.path.exists("/proc/%d" % m.pid):
                    os.kill(m.pid, signal.SIGKILL)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.children.append(p)
        return p

    def names(self, prefix, count, size):
        names = ["%s-%03d.WAV" % (prefix, i) for i in range(count)]
        for n in names:
            self.mock.synthetic(n, size)
        return names

    # a ---------------------------------------------------------------------------
    def test_a_foreign_client_holding_every_slot_is_waited_out(self):
        names = self.names("held", 6, 30_000)
        later = self.names("after", 20, 5_000)
        m = self.mount()
        self.assertEqual(m.counter("budget"), 3)
        hold_seconds = 4.0
        self.mock.hold(3, hold_seconds)
        held_until = time.monotonic() + hold_seconds
        readers = [Reader(m.path(n)) for n in names]
        # The mount learns that the tenant is busy: its budget drops below 3.

        def lowered():
            budget = m.counter("budget")
            return (budget,) if budget < 3 else None

        lowest, = wait_until(lowered, hold_seconds, "the budget to drop while the slots are held")
        self.assertGreaterEqual(lowest, 1)
        self.assertGreater(held_until - time.monotonic(), 0, "the budget dropped too late")
        join_all(readers, 60, "reads behind a foreign client's hold")
        for r in readers:
            name = os.path.basename(r.path)
            self.assertIsNone(r.errno, "%s failed with %s" % (name, r.errno and errno.errorcode[r.errno]))
            self.assertEqual(r.data, self.mock.raw(name))
            # They could only succeed once the foreign client let go.
            self.assertGreater(r.ended_at, held_until - 0.2)
        s = self.mock.stats()
        print("hold of %g s: %d exceeded replies, last read after %.1f s, max in flight %d"
              % (hold_seconds, s["exceeded"], max(r.ended_at for r in readers) - readers[0].started_at,
                 s["max_in_flight"]))
        self.assertGreaterEqual(s["exceeded"], 1, "the hold never refused a call")
        # Mount-wide exponential backoff, not six readers hammering on their own.
        self.assertLessEqual(s["exceeded"], 12)
        self.assertEqual(m.counter("exceeded_replies"), s["exceeded"])
        self.assertEqual({n: s["calls"].get(n) for n in names}, {n: 1 for n in names})
        self.assertLessEqual(s["max_in_flight"], 3)
        self.assertEqual(m.counter("errors_eagain"), 0)
        # Successful calls raise the budget back to max_concurrent.
        for n in later:
            if m.counter("budget") == 3:
                break
            with open(m.path(n), "rb") as f:
                self.assertEqual(f.read(), self.mock.raw(n))
        self.assertEqual(m.counter("budget"), 3, "the budget did not climb back")

    # b ---------------------------------------------------------------------------
    def test_b_busy_timeout_bounds_the_wait_with_eagain(self):
        self.mock.synthetic("patience.WAV", 10_000)
        # retries=0: waiting out a busy tenant uses no retries.
        m = self.mount("retries=0", "busy_timeout=2")
        self.mock.hold(3, 30)
        reader = Reader(m.path("patience.WAV"))
        self.assertTrue(reader.finished(15), "still waiting after 15 s with busy_timeout=2")
        waited = reader.ended_at - reader.started_at
        print("busy_timeout=2: EAGAIN after %.2f s, %d exceeded replies"
              % (waited, self.mock.stats()["exceeded"]))
        self.assertEqual(reader.errno, errno.EAGAIN)
        self.assertGreaterEqual(waited, 1.9)  # the 2 s of patience, counted from the first busy reply
        self.assertLess(waited, 6.0)  # well before the 30 s hold ends
        s = self.mock.stats()
        self.assertGreaterEqual(s["exceeded"], 1)
        self.assertLessEqual(s["exceeded"], 8)
        self.assertEqual(s["calls"], {})
        self.assertGreaterEqual(m.counter("errors_eagain"), 1)
        # A busy tenant is not cached as an answer: once it is free the name reads.
        self.mock.clear_holds()
        with open(m.path("patience.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("patience.WAV"))
        self.assertEqual(self.mock.calls("patience.WAV"), 1)

    # c ---------------------------------------------------------------------------
    def test_c_hundred_pending_names_never_tie_up_the_mount(self):
        names = self.names("batch", 100, 20_000)
        self.mock.synthetic("warm.WAV", 4_000_000)  # memory tier: reads reach the daemon
        self.mock.synthetic("queued.WAV", 20_000)
        m = self.mount()
        warm = m.path("warm.WAV")
        self.assertEqual(os.stat(warm).st_size, 4_000_000)
        held = open(warm, "rb")  # open, not read: its pages are not in the page cache
        try:
            self.measure_with_hundred_pending(m, names, held)
        finally:
            held.close()  # before tearDown unmounts: an open file keeps the mount busy

    def measure_with_hundred_pending(self, m, names, held):
        warm = m.path("warm.WAV")
        raw_warm = self.mock.raw("warm.WAV")
        self.mock.config(latency=2)
        self.mock.reset()
        readers = [Reader(m.path(n)) for n in names]
        wait_until(lambda: self.mock.stats()["in_flight"] == 3, 10, "3 calls in flight")
        wait_until(lambda: m.counter("pending") >= 95, 10, "the batch to be pending")
        reads0 = m.counter("read_requests")
        worst = {"getxattr": 0.0, "getattr": 0.0, "read": 0.0}
        cat_exit = None
        for i in range(5):
            t, _ = timed(m.counter, "upstream_calls")
            worst["getxattr"] = max(worst["getxattr"], t)
            t, size = timed(statx_size_sync, warm)
            self.assertEqual(size, 4_000_000)
            worst["getattr"] = max(worst["getattr"], t)
            offset = i * 800_000 + 4096 * i
            t, data = timed(os.pread, held.fileno(), 4096, offset)
            self.assertEqual(data, raw_warm[offset:offset + 4096])
            worst["read"] = max(worst["read"], t)
            if i == 1:
                # Ctrl-C on a cat queued behind the whole batch returns at once.
                cat = self.spawn(["cat", m.path("queued.WAV")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                wait_until(lambda: blocked_in_fuse(cat.pid), 5,
                           "cat to wait on the mount (wchan %r)" % wchan(cat.pid))
                self.assertIsNone(cat.poll())
                cat_exit = harness.interrupt(cat)
            time.sleep(0.3)
        pending = m.counter("pending")
        print("100 pending names: worst getxattr %.1f ms, getattr %.1f ms, read %.1f ms; "
              "Ctrl-C on a queued cat returned in %.1f ms; %d still pending"
              % (worst["getxattr"] * 1e3, worst["getattr"] * 1e3, worst["read"] * 1e3,
                 cat_exit * 1e3, pending))
        self.assertGreater(pending, 50, "the batch was no longer pending while measured")
        self.assertGreaterEqual(m.counter("read_requests") - reads0, 5,
                                "the reads of the open file did not reach the daemon")
        for what, t in worst.items():
            self.assertLess(t, 0.5, "%s took %.2f s with 100 names pending" % (what, t))
        self.assertLess(cat_exit, 1.0)
        join_all(readers, 150, "the batch")
        for r in readers:
            name = os.path.basename(r.path)
            self.assertIsNone(r.errno, "%s failed with %s" % (name, r.errno and errno.errorcode[r.errno]))
            self.assertEqual(r.data, self.mock.raw(name), name)
        s = self.mock.stats()
        self.assertEqual({n: s["calls"].get(n) for n in names}, {n: 1 for n in names})
        self.assertEqual(s["calls"].get("queued.WAV", 0), 0, "the interrupted queued name was fetched")
        self.assertEqual(s["total_calls"], 100)
        self.assertEqual(s["exceeded"], 0)
        self.assertLessEqual(s["max_in_flight"], 3)
        self.assertEqual(m.counter("pending"), 0)

    # d ---------------------------------------------------------------------------
    def test_d_reader_under_a_periodic_timer_signal_gets_its_file(self):
        self.mock.synthetic("timer.WAV", 200_000)
        m = self.mount()
        self.mock.config(name_latency={"timer.WAV": 1.5})
        child = self.spawn([sys.executable, "-c", TIMER_READER, m.path("timer.WAV")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("a reader under a 0.4 s timer got nothing in 30 s (%d calls)"
                      % self.mock.calls("timer.WAV"))
        self.assertEqual(child.returncode, 0, err.decode(errors="replace"))
        print("timer reader: %s, %d calls" % (err.decode().strip(), self.mock.calls("timer.WAV")))
        self.assertEqual(out, self.mock.raw("timer.WAV"))
        self.assertIn(self.mock.calls("timer.WAV"), (1, 2))

    # e ---------------------------------------------------------------------------
    def cp_once(self, m, name):
        dest = os.path.join(m.workdir, "copy-" + name)
        r = subprocess.run(["cp", m.path(name), dest], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "cp of %s: %s (%d calls)"
                         % (name, r.stderr.strip(), self.mock.calls(name)))
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), self.mock.raw(name), name)
        os.unlink(dest)

    def test_e_cache_ttl_zero_and_a_download_slower_than_the_ttl(self):
        # Undated names get a new mtime each fetch; dated ones carry their call time.
        # The small one stays in memory, the big one goes to the disk tier.
        small, big = "ttl-undated.WAV", "pbx4-1603469421.1196632-ttl.WAV"
        self.mock.synthetic(small, 50_000)
        self.mock.synthetic(big, 2_000_000)
        for options, latency in ((("cache_ttl=0",), 0), (("cache_ttl=1",), 2)):
            with self.subTest(options=options, latency=latency):
                m = self.mount("mem_cache_size=1M", *options)
                self.mock.config(name_latency={small: latency, big: latency})
                for name in (small, big):
                    self.cp_once(m, name)
                    self.assertEqual(self.mock.calls(name), 1, "%s %s" % (options, name))
                if options == ("cache_ttl=0",):
                    # Not kept for later lookups: the next cp fetches again, once.
                    self.cp_once(m, small)
                    self.assertEqual(self.mock.calls(small), 2)
                m.close()
                self.mounts.remove(m)

    # f ---------------------------------------------------------------------------
    def test_f_sigterm_with_queued_downloads_exits_at_once_and_leaves_no_files(self):
        # 2 MB each (the disk tier with mem_cache_size=1M), paced to about 4.5 s each:
        # three stream into cache files, six wait behind them.
        names = self.names("term", 9, 2_000_000)
        m = self.mount("mem_cache_size=1M")
        self.mock.config(pace=600_000)
        readers = [Reader(m.path(n)) for n in names]
        wait_until(lambda: self.mock.stats()["in_flight"] == 3, 10, "3 calls in flight")
        wait_until(lambda: [f for f in os.listdir(m.cache_dir) if f.startswith("rec-")], 10,
                   "downloads to write their cache files")
        self.assertTrue(all(r.is_alive() for r in readers))
        os.kill(m.pid, signal.SIGTERM)
        sent = time.monotonic()
        wait_until(lambda: harness.process_exited(m.pid), 10, "the daemon to exit",
                   interval=0.01)
        exited = time.monotonic() - sent
        join_all(readers, 5, "readers after SIGTERM")
        answered = max(r.ended_at for r in readers) - sent
        print("SIGTERM with 9 downloads: daemon gone after %.2f s, readers answered within "
              "%.2f s: %s" % (exited, answered,
                              sorted({errno.errorcode.get(r.errno, r.errno) for r in readers})))
        self.assertLess(exited, 1.5)
        self.assertFalse(harness.is_mounted(m.dir))
        left = [f for f in os.listdir(m.cache_dir) if f.startswith("rec-")] \
            if os.path.isdir(m.cache_dir) else []
        self.assertEqual(left, [])
        for r in readers:
            self.assertIsNone(r.data, "%s got bytes" % r.path)
            self.assertIsNotNone(r.errno)
        self.assertLess(answered, 2.0)

    # g ---------------------------------------------------------------------------
    def test_g_an_interrupted_lookup_keeps_its_download_for_the_next(self):
        self.mock.synthetic("again.WAV", 100_000)
        m = self.mount()
        self.mock.config(name_latency={"again.WAV": 2})
        cat = self.spawn(["cat", m.path("again.WAV")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        started = time.monotonic()
        wait_until(lambda: self.mock.stats()["in_flight"] == 1, 5, "the call to start")
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))  # the scenario: Ctrl-C at 0.5 s
        self.assertIsNone(cat.poll())
        self.assertLess(harness.interrupt(cat), 1.0)
        with open(m.path("again.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("again.WAV"))
        self.assertEqual(self.mock.calls("again.WAV"), 1)
        # It joined the running download rather than starting over.
        self.assertLess(time.monotonic() - started, 3.5)

    # h ---------------------------------------------------------------------------
    def test_h_max_pending_bounds_the_requests_waiting_for_downloads(self):
        slow = self.names("slow", 4, 10_000)
        self.mock.synthetic("fifth.WAV", 10_000)
        self.mock.synthetic("cached.WAV", 10_000)
        m = self.mount("max_pending=4")
        with open(m.path("cached.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("cached.WAV"))
        self.mock.config(name_latency={n: 4 for n in slow})
        readers = [Reader(m.path(n)) for n in slow]
        wait_until(lambda: m.counter("pending") == 4, 10, "4 pending lookups")
        t, err = timed(errno_of, os.stat, m.path("fifth.WAV"))
        self.assertEqual(err, errno.EAGAIN)
        self.assertLess(t, 0.5)
        self.assertEqual(self.mock.calls("fifth.WAV"), 0)
        # What needs no download is never refused.
        self.assertEqual(statx_size_sync(m.path("cached.WAV")), 10_000)
        self.assertEqual(m.counter("pending"), 4)
        join_all(readers, 30, "the 4 slow reads")
        for r in readers:
            self.assertEqual(r.data, self.mock.raw(os.path.basename(r.path)))
        # Refused at once is not an answer: it reads once there is room.
        with open(m.path("fifth.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("fifth.WAV"))
        self.assertEqual(self.mock.calls("fifth.WAV"), 1)
        self.assertEqual(m.counter("pending"), 0)


if __name__ == "__main__":
    harness.main()

"""The mounted filesystem, end to end: real binary, real FUSE, mock API over TLS."""

import errno
import hashlib
import mmap
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness


errno_of = harness.errno_of


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class FilesystemTest(harness.E2ETestCase):
    mock_args = ("--demo",)

    def demo_names(self):
        return sorted(os.listdir(os.path.join(self.mock.state, "demo-recordings")))

    def test_cp_is_byte_exact(self):
        info = self.mock.synthetic("pbx4-1603469421.1196632-cp.WAV", 2_500_000)
        m = self.mount()
        dest = os.path.join(m.workdir, "copy.WAV")
        subprocess.run(["cp", m.path("pbx4-1603469421.1196632-cp.WAV"), dest], check=True)
        with open(dest, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), info["sha256"])
        self.assertEqual(self.mock.calls("pbx4-1603469421.1196632-cp.WAV"), 1)

    def test_sox_decodes_a_real_gsm_recording(self):
        name = self.demo_names()[0]
        m = self.mount()
        soxi = subprocess.run(["soxi", m.path(name)], capture_output=True, text=True, check=True)
        self.assertIn("GSM", soxi.stdout)
        self.assertIn("8000", soxi.stdout)
        out = os.path.join(m.workdir, "decoded.wav")
        subprocess.run(["sox", m.path(name), "-e", "signed-integer", out], check=True)
        self.assertGreater(os.path.getsize(out), 10000)
        self.assertEqual(read_file(m.path(name)), self.mock.raw(name))

    def test_mmap_reads(self):
        self.mock.synthetic("mm.WAV", 300_000)
        m = self.mount()
        with open(m.path("mm.WAV"), "rb") as f:
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(bytes(mm), self.mock.raw("mm.WAV"))

    def test_attributes(self):
        self.mock.synthetic("pbx4-1603469421.1196632-attr.WAV", 12345)
        self.mock.synthetic("undated.WAV", 100)
        m = self.mount()
        st = os.stat(m.path("pbx4-1603469421.1196632-attr.WAV"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o444)
        self.assertEqual(st.st_size, 12345)
        self.assertEqual(int(st.st_mtime), 1603469421)
        before = time.time()
        st2 = os.stat(m.path("undated.WAV"))
        self.assertLess(abs(st2.st_mtime - before), 5)
        root = os.stat(m.dir)
        self.assertEqual(stat.S_IMODE(root.st_mode), 0o555)
        self.assertEqual(root.st_uid, os.getuid())

    def test_stat_then_three_reads_is_one_call(self):
        self.mock.synthetic("one.WAV", 50_000)
        m = self.mount()
        os.stat(m.path("one.WAV"))
        for _ in range(3):
            self.assertEqual(len(read_file(m.path("one.WAV"))), 50_000)
        self.assertEqual(self.mock.calls("one.WAV"), 1)

    def test_open_handle_keeps_its_bytes_past_expiry(self):
        first = os.urandom(300_000)
        self.mock.add("held.WAV", first)
        m = self.mount("cache_ttl=1", "mem_cache_size=1M")  # 300 kB goes to the disk tier
        with open(m.path("held.WAV"), "rb") as f:
            head = f.read(1000)
            self.mock.add("held.WAV", b"changed upstream")
            time.sleep(2)
            self.assertEqual(os.fstat(f.fileno()).st_size, 300_000)  # no new call for fstat
            self.assertEqual(self.mock.calls("held.WAV"), 1)
            # A new open fetches the new bytes; the old handle still reads the old ones.
            self.assertEqual(read_file(m.path("held.WAV")), b"changed upstream")
            self.assertEqual(head + f.read(), first)
        self.assertEqual(self.mock.calls("held.WAV"), 2)
        time.sleep(1.5)
        os.listdir(m.dir)  # expired entries are dropped, the released file with them
        self.assertEqual(os.listdir(m.cache_dir), [])

    def test_ttl_expiry_fetches_again(self):
        self.mock.synthetic("ttl.WAV", 10_000)
        m = self.mount("cache_ttl=2")
        read_file(m.path("ttl.WAV"))
        read_file(m.path("ttl.WAV"))
        self.assertEqual(self.mock.calls("ttl.WAV"), 1)
        time.sleep(3)
        read_file(m.path("ttl.WAV"))
        self.assertEqual(self.mock.calls("ttl.WAV"), 2)

    def test_three_calls_in_flight_at_most_and_at_once(self):
        names = ["par%02d.WAV" % i for i in range(12)]
        for n in names:
            self.mock.synthetic(n, 20_000)
        m = self.mount()
        self.mock.config(latency=0.6)
        self.mock.reset()
        start = time.monotonic()
        with ThreadPoolExecutor(12) as pool:
            sizes = list(pool.map(lambda n: len(read_file(m.path(n))), names))
        wall = time.monotonic() - start
        self.assertEqual(sizes, [20_000] * 12)
        s = self.mock.stats()
        self.assertEqual(s["max_in_flight"], 3)
        self.assertEqual(s["exceeded"], 0)
        self.assertEqual(s["total_calls"], 12)
        # Serially this is 7.2 s of latency; three at a time, 2.4 s.
        self.assertLess(wall, 6.0, "calls did not overlap")

    def test_parallel_readers_of_one_name_share_one_call(self):
        self.mock.synthetic("shared.WAV", 400_000)
        m = self.mount()
        self.mock.config(latency=0.5)
        with ThreadPoolExecutor(10) as pool:
            digests = set(pool.map(lambda _: hashlib.sha256(read_file(m.path("shared.WAV"))).hexdigest(),
                                   range(10)))
        self.assertEqual(len(digests), 1)
        self.assertEqual(self.mock.calls("shared.WAV"), 1)

    def test_errno_for_each_api_answer(self):
        rows = [
            ("error:Authorization Failed", errno.EACCES),
            ("error:Permission Denied", errno.EACCES),
            ("error:That username is not part of this Tenant", errno.ENOENT),
            ("error:Incorrect Input Parameters. Please check documentation", errno.ENOENT),
            ("empty", errno.ENOENT),
            ("error:Concurrent API Calls Exceeded", errno.EAGAIN),
            ("error:Sip Server not found", errno.EIO),
            ("error:I'm sorry, connection to one or more of the databases failed", errno.EIO),
            ("error:Action Name Not Found", errno.EPROTO),
            ("error:Input XML not loaded", errno.EPROTO),
            ("error:Something unheard of", errno.EIO),
            ("http:503", errno.EIO),
            ("html", errno.EIO),
            ("corrupt", errno.EIO),
            ("truncate:500", errno.EIO),
            ("stall:5", errno.ETIMEDOUT),
        ]
        # A permanently busy tenant gives EAGAIN once busy_timeout runs out.
        m = self.mount("retries=1", "timeout=1", "busy_timeout=1")
        for i, (fault, expected) in enumerate(rows):
            name = "err%02d.WAV" % i
            self.mock.synthetic(name, 100_000)
            self.mock.fault(name, fault)
            with self.subTest(fault=fault):
                self.assertEqual(errno_of(os.stat, m.path(name)), expected)
        # Nothing was cached as data: clear the faults and every name reads.
        self.mock.clear_faults()
        for i in range(len(rows)):
            name = "err%02d.WAV" % i
            if rows[i][1] == errno.ENOENT:
                continue  # cached negatively for the TTL, by design
            with self.subTest(recovered=name):
                self.assertEqual(read_file(m.path(name)), self.mock.raw(name))

    def test_dot_names_cost_nothing_and_misses_are_cached(self):
        m = self.mount()
        for name in (".hidden", ".DS_Store", "._x.WAV", ".Trash-0"):
            self.assertEqual(errno_of(os.stat, m.path(name)), errno.ENOENT)
        self.assertEqual(self.mock.stats()["total_calls"], 0)
        for _ in range(3):
            self.assertEqual(errno_of(os.stat, m.path("missing.WAV")), errno.ENOENT)
        self.assertEqual(self.mock.calls("missing.WAV"), 1)
        self.assertEqual(self.mock.stats()["total_calls"], 1)

    def test_name_pattern_limits_upstream_names(self):
        self.mock.synthetic("pbx4-1.WAV", 100)
        m = self.mount("name_pattern=pbx*.WAV")
        self.assertEqual(errno_of(os.stat, m.path("desktop.ini")), errno.ENOENT)
        self.assertEqual(os.stat(m.path("pbx4-1.WAV")).st_size, 100)
        self.assertEqual(self.mock.stats()["total_calls"], 1)

    def test_ls_shows_fetched_names(self):
        self.mock.synthetic("listed-a.WAV", 100)
        self.mock.synthetic("listed-b.WAV", 200)
        m = self.mount("nolisting")  # no day folders: the root has the cached names only
        self.assertEqual(os.listdir(m.dir), ["pcm"])  # and the pcm/ view
        read_file(m.path("listed-a.WAV"))
        os.stat(m.path("listed-b.WAV"))
        self.assertEqual(sorted(os.listdir(m.dir)), ["listed-a.WAV", "listed-b.WAV", "pcm"])
        self.assertEqual(self.mock.stats()["total_calls"], 2)

    def test_writes_are_refused(self):
        self.mock.synthetic("ro.WAV", 100)
        m = self.mount()
        os.stat(m.path("ro.WAV"))
        self.assertEqual(errno_of(open, m.path("ro.WAV"), "wb"), errno.EROFS)
        self.assertEqual(errno_of(open, m.path("new.WAV"), "wb"), errno.EROFS)
        self.assertEqual(errno_of(os.mkdir, m.path("d")), errno.EROFS)
        self.assertEqual(errno_of(os.unlink, m.path("ro.WAV")), errno.EROFS)
        self.assertEqual(errno_of(os.rename, m.path("ro.WAV"), m.path("x.WAV")), errno.EROFS)
        self.assertEqual(errno_of(os.chmod, m.path("ro.WAV"), 0o644), errno.EROFS)
        self.assertEqual(errno_of(os.setxattr, m.path("ro.WAV"), "user.x", b"1"), errno.EROFS)

    def test_ctrl_c_on_a_stuck_cat_returns_promptly(self):
        self.mock.synthetic("stuck.WAV", 1000)
        self.mock.synthetic("other.WAV", 1000)
        m = self.mount()
        self.mock.control("POST", "/config", {"name_latency": {"stuck.WAV": 20}})
        cat = subprocess.Popen(["cat", m.path("stuck.WAV")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        self.assertIsNone(cat.poll(), "cat should be waiting on the slow call")
        sent = time.monotonic()
        cat.send_signal(signal.SIGINT)
        cat.wait(10)
        self.assertLess(time.monotonic() - sent, 5.0)
        # The daemon stays healthy.
        self.assertEqual(len(read_file(m.path("other.WAV"))), 1000)
        self.mock.control("POST", "/config", {"name_latency": {}})

    def test_outage_gives_clean_errors_and_recovers(self):
        self.mock.synthetic("before.WAV", 1000)
        self.mock.synthetic("after.WAV", 1000)
        m = self.mount("retries=1", "timeout=2")
        self.assertEqual(len(read_file(m.path("before.WAV"))), 1000)
        self.mock.restart(down_seconds=None)
        try:
            err = errno_of(os.stat, m.path("after.WAV"))
            self.assertIn(err, (errno.EIO, errno.ETIMEDOUT))
        finally:
            self.mock.restart(up=True)
        self.mock.synthetic("after.WAV", 1000)  # a fresh mock process starts empty
        self.assertEqual(read_file(m.path("after.WAV")), self.mock.raw("after.WAV"))

    def test_large_recording_keeps_memory_flat(self):
        info = self.mock.synthetic("big30.WAV", 30 * 1024 * 1024)
        self.mock.synthetic("small.WAV", 10_000)
        env = dict(os.environ)
        if harness.SANITIZED:
            # ASan keeps freed blocks in a quarantine (256 MB by default): shrink it so
            # RSS shows what the code holds, not what ASan holds back. Added to the
            # run's options, whose log_path is how a report from this daemon fails it.
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64")
        m = self.mount("mem_cache_size=8M", env=env)
        self.assertIsNotNone(m.pid)
        read_file(m.path("small.WAV"))  # warm up every code path once
        baseline_mb = harness.rss_peak_kb(m.pid) / 1024
        digest = hashlib.sha256()
        with open(m.path("big30.WAV"), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self.assertEqual(digest.hexdigest(), info["sha256"])
        peak_mb = harness.rss_peak_kb(m.pid) / 1024
        print("daemon peak RSS: %.1f MB after start, %.1f MB after a 30 MB recording"
              % (baseline_mb, peak_mb))
        # Growth while streaming 30 MB: buffers only, never the recording.
        self.assertLess(peak_mb - baseline_mb, 8)
        if not harness.SANITIZED:  # ASan's shadow memory inflates the total
            self.assertLess(peak_mb, 48)

    def test_cache_files_are_private_and_gone_after_unmount(self):
        self.mock.synthetic("private.WAV", 3 * 1024 * 1024)
        m = self.mount("mem_cache_size=1M")
        read_file(m.path("private.WAV"))
        self.assertEqual(stat.S_IMODE(os.stat(m.cache_dir).st_mode), 0o700)
        files = os.listdir(m.cache_dir)
        self.assertEqual(len(files), 1)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(m.cache_dir, files[0])).st_mode), 0o600)
        m.unmount()
        self.assertEqual(os.listdir(m.cache_dir), [])

    def test_counters_as_xattrs(self):
        self.mock.synthetic("x.WAV", 1000)
        m = self.mount()
        read_file(m.path("x.WAV"))
        read_file(m.path("x.WAV"))
        errno_of(os.stat, m.path("nope.WAV"))
        names = os.listxattr(m.dir)
        for key in ("upstream_calls", "coalesced_waits", "hits_memory", "hits_disk", "hits_negative",
                    "bytes_fetched", "in_flight", "queued", "errors_enoent"):
            self.assertIn("user.euphoria." + key, names)
        self.assertEqual(os.getxattr(m.dir, "user.euphoria.upstream_calls"), b"2")
        self.assertEqual(os.getxattr(m.dir, "user.euphoria.bytes_fetched"), b"1000")
        getfattr = subprocess.run(["getfattr", "-d", "-m", "-", m.dir], capture_output=True, text=True)
        self.assertIn('user.euphoria.upstream_calls="2"', getfattr.stdout)

    def test_xattr_namespaces_other_than_user_are_unsupported(self):
        # What a local filesystem without them says: ls -l and cp remember EOPNOTSUPP
        # for the whole mount, where ENODATA would send them back for every file.
        self.mock.synthetic("x.WAV", 1000)
        m = self.mount()
        for path in (m.dir, m.path("x.WAV")):
            for name in ("security.selinux", "system.posix_acl_access", "trusted.a"):
                self.assertEqual(errno_of(os.getxattr, path, name), errno.EOPNOTSUPP, (path, name))
            self.assertEqual(errno_of(os.getxattr, path, "user.euphoria.nope"), errno.ENODATA)
        # Copies that keep ACLs and xattrs still work, and keep the bytes.
        dest = tempfile.mkdtemp(prefix="euphoria-kept-")
        self.addCleanup(shutil.rmtree, dest)
        subprocess.run(["cp", "--preserve=all", m.path("x.WAV"), os.path.join(dest, "cp.WAV")],
                       check=True, capture_output=True)
        subprocess.run(["rsync", "-aAX", m.path("x.WAV"), os.path.join(dest, "rsync.WAV")],
                       check=True, capture_output=True)
        for copy in ("cp.WAV", "rsync.WAV"):
            self.assertEqual(read_file(os.path.join(dest, copy)), self.mock.raw("x.WAV"))
        long_listing = subprocess.run(["ls", "-l", m.dir], check=True, capture_output=True, text=True)
        self.assertRegex(long_listing.stdout, r"(?m)^-r--r--r-- 1 .* x\.WAV$")


if __name__ == "__main__":
    harness.main()

"""FUSE passthrough, end to end: disk-cached recordings are read by the kernel straight
from the daemon's cache file. The kernel fails an open with EIO when the server breaks
its rules, so these tests open the way players and scripts do: again and again, at
once, across a re-fetch, mixed with memory-tier files, and by mmap."""

import gzip
import hashlib
import mmap
import os
import platform
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness


def kernel_offers_passthrough():
    """CONFIG_FUSE_PASSTHROUGH (Linux 6.9+), for a daemon with CAP_SYS_ADMIN (root
    mounts here). Worked out apart from the daemon, so that a daemon that stopped
    asking for passthrough fails these tests; without it reads must still work."""
    with open("/proc/self/status") as f:
        cap_eff = int([l for l in f if l.startswith("CapEff:")][0].split()[1], 16)
    if not cap_eff >> 21 & 1:
        return False
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return "CONFIG_FUSE_PASSTHROUGH=y" in f.read()
    except OSError:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
        return (major, minor) >= (6, 9)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def counter(m, name):
    return int(os.getxattr(m.dir, "user.euphoria." + name))


class PassthroughTest(harness.E2ETestCase):
    # 1M of memory tier: anything over 128 KiB goes to a disk-cache file.
    def mount_disk_tier(self, *options):
        return self.mount("mem_cache_size=1M", *options)

    def expected_opens(self, n):
        return n if kernel_offers_passthrough() else 0

    def warm(self, m, name):
        """Looks `name` up and waits for its download to end. An open made while a
        download runs is served by the daemon (the kernel would stop reading a
        passthrough file at its current end); these tests count the opens after."""
        os.stat(m.path(name))
        harness.wait_until(lambda: counter(m, "in_flight") == 0, 30, "the download of " + name)

    def test_disk_tier_reads_bypass_the_daemon(self):
        info = self.mock.synthetic("pbx4-1603469421.1196632-pt-big.WAV", 3_000_000)
        m = self.mount_disk_tier()
        self.warm(m, "pbx4-1603469421.1196632-pt-big.WAV")
        for _ in range(3):
            self.assertEqual(sha256_of(m.path("pbx4-1603469421.1196632-pt-big.WAV")), info["sha256"])
        self.assertEqual(counter(m, "passthrough"), 1 if kernel_offers_passthrough() else 0)
        self.assertEqual(counter(m, "passthrough_opens"), self.expected_opens(3))
        self.assertEqual(self.mock.calls("pbx4-1603469421.1196632-pt-big.WAV"), 1)
        # Not one read reached the daemon: the kernel read the cache file itself.
        # (Through the page cache, the first read would have: see the next tests.)
        if kernel_offers_passthrough():
            self.assertEqual(counter(m, "read_requests"), 0)
        else:
            self.assertGreater(counter(m, "read_requests"), 0)

    def test_memory_tier_stays_in_the_page_cache(self):
        info = self.mock.synthetic("pbx4-1603469421.1196632-pt-small.WAV", 50_000)
        m = self.mount_disk_tier()
        self.assertEqual(sha256_of(m.path("pbx4-1603469421.1196632-pt-small.WAV")), info["sha256"])
        self.assertEqual(sha256_of(m.path("pbx4-1603469421.1196632-pt-small.WAV")), info["sha256"])
        self.assertEqual(counter(m, "passthrough_opens"), 0)
        self.assertGreater(counter(m, "read_requests"), 0)

    def test_mmap_and_seek_read_the_right_bytes(self):
        self.mock.synthetic("pbx4-1603469421.1196632-pt-mm.WAV", 1_000_000)
        raw = self.mock.raw("pbx4-1603469421.1196632-pt-mm.WAV")
        m = self.mount_disk_tier()
        self.warm(m, "pbx4-1603469421.1196632-pt-mm.WAV")
        with open(m.path("pbx4-1603469421.1196632-pt-mm.WAV"), "rb") as f:
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(mm[:], raw)
            f.seek(777_777)
            self.assertEqual(f.read(1000), raw[777_777:778_777])
            self.assertEqual(os.pread(f.fileno(), 10, len(raw) - 5), raw[-5:])
        self.assertEqual(counter(m, "passthrough_opens"), self.expected_opens(1))

    def test_concurrent_opens_of_one_recording(self):
        info = self.mock.synthetic("pbx4-1603469421.1196632-pt-many.WAV", 2_000_000)
        m = self.mount_disk_tier()
        self.warm(m, "pbx4-1603469421.1196632-pt-many.WAV")
        with ThreadPoolExecutor(8) as pool:
            sums = list(pool.map(lambda _: sha256_of(m.path("pbx4-1603469421.1196632-pt-many.WAV")), range(64)))
        self.assertEqual(sums, [info["sha256"]] * 64)
        self.assertEqual(self.mock.calls("pbx4-1603469421.1196632-pt-many.WAV"), 1)
        self.assertEqual(counter(m, "passthrough_opens"), self.expected_opens(64))

    def test_open_held_across_a_refetch(self):
        # A player holds the file while the TTL passes; the next open re-fetches the
        # same version (same size, and the call time in its name) into a new cache
        # file, under the same inode. The kernel allows one backing file per inode,
        # so that open must reuse the held one, not fail with EIO.
        name = "pbx4-1603469421.1196632-pt-held.WAV"
        info = self.mock.synthetic(name, 1_000_000)
        m = self.mount_disk_tier("cache_ttl=3")
        self.warm(m, name)
        with open(m.path(name), "rb") as held:
            self.assertEqual(hashlib.sha256(held.read()).hexdigest(), info["sha256"])
            time.sleep(3.3)
            self.assertEqual(os.stat(m.path(name)).st_ino, os.fstat(held.fileno()).st_ino)
            self.assertEqual(sha256_of(m.path(name)), info["sha256"])
            self.assertEqual(self.mock.calls(name), 2)
            held.seek(0)
            self.assertEqual(hashlib.sha256(held.read()).hexdigest(), info["sha256"])
        # Closed: the next open after another TTL gets a fresh backing file.
        time.sleep(3.3)
        self.warm(m, name)
        self.assertEqual(sha256_of(m.path(name)), info["sha256"])
        self.assertEqual(self.mock.calls(name), 3)
        self.assertEqual(counter(m, "passthrough_opens"), self.expected_opens(3))

    def test_nopassthrough_serves_every_read_itself(self):
        info = self.mock.synthetic("pbx4-1603469421.1196632-pt-off.WAV", 1_000_000)
        m = self.mount_disk_tier("nopassthrough")
        for _ in range(2):
            self.assertEqual(sha256_of(m.path("pbx4-1603469421.1196632-pt-off.WAV")), info["sha256"])
        self.assertEqual(counter(m, "passthrough"), 0)
        self.assertEqual(counter(m, "passthrough_opens"), 0)
        self.assertGreater(counter(m, "read_requests"), 0)

    def test_cache_dir_on_overlayfs(self):
        # A container's root is overlayfs: its files can back a passthrough open.
        top = tempfile.mkdtemp(prefix="euphoria-ovl-")
        lower, upper, work, merged = (os.path.join(top, d) for d in ("l", "u", "w", "m"))
        for d in (lower, upper, work, merged):
            os.makedirs(d)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), merged],
                       check=True)
        m = None
        try:
            info = self.mock.synthetic("pbx4-1603469421.1196632-pt-ovl.WAV", 1_000_000)
            m = self.mount_disk_tier("cache_dir=" + os.path.join(merged, "cache"))
            self.warm(m, "pbx4-1603469421.1196632-pt-ovl.WAV")
            for _ in range(2):
                self.assertEqual(sha256_of(m.path("pbx4-1603469421.1196632-pt-ovl.WAV")),
                                 info["sha256"])
            self.assertEqual(counter(m, "passthrough_opens"), self.expected_opens(2))
        finally:
            # The daemon's cache lives on the overlay: unmount it first.
            if m is not None:
                m.close()
                self.mounts.remove(m)
            if subprocess.run(["umount", merged]).returncode == 0:
                subprocess.run(["rm", "-rf", top], check=False)

    def test_user_mount_falls_back_to_the_page_cache(self):
        # An ordinary user's daemon lacks CAP_SYS_ADMIN, which the kernel requires to
        # register a backing file: every open must still work, through the daemon.
        info = self.mock.synthetic("pbx4-1603469421.1196632-pt-user.WAV", 1_000_000)
        um = harness.UserMount(self.mock, ["mem_cache_size=1M"])
        try:
            self.assertEqual(um.result.returncode, 0, um.result.stderr)
            for _ in range(3):
                r = harness.as_nobody("sha256sum", um.path("pbx4-1603469421.1196632-pt-user.WAV"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.split()[0].decode(), info["sha256"])
            # Without allow_other only the user who mounted may look, root included.
            def user_counter(name):
                r = harness.as_nobody(sys.executable, "-c",
                                      "import os, sys; print(int(os.getxattr(sys.argv[1], "
                                      "'user.euphoria.' + sys.argv[2])))", um.dir, name)
                self.assertEqual(r.returncode, 0, r.stderr)
                return int(r.stdout)
            self.assertEqual(user_counter("passthrough"), 0)
            self.assertEqual(user_counter("passthrough_opens"), 0)
            self.assertGreater(user_counter("read_requests"), 0)
        finally:
            um.close()


if __name__ == "__main__":
    harness.main()

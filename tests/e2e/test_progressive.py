"""Progressive reads (issue 14), end to end: the mock paces its reply body, and the
mount lets readers in as soon as the RIFF header gives the size.

- stat reports the right size, and the first 64 KiB arrive, long before the download
  ends, in the memory and the disk tier; soxi returns before the end;
- mmap and pread at scattered offsets during the download are byte-exact;
- a reply cut once after 40% continues byte-exact through the retry; cut on every
  try, a reader past the cut gets EIO within the retry bound, and once the fault is
  gone the next read is byte-exact;
- RIFF headers that claim too little or too much: never a wrong byte, never a short
  read that looks like the end of a recording cut short;
- with passthrough, a cp during the download is byte-exact, and later opens use it.
"""

import errno
import hashlib
import mmap
import os
import random
import struct
import subprocess
import tempfile
import time

import harness
from test_passthrough import kernel_offers_passthrough

wait_until = harness.wait_until

PACE = 3 * 1024 * 1024  # bytes/s of the reply body: about 2.7 s for a 6 MB recording


def counter(m, name):
    return int(os.getxattr(m.dir, "user.euphoria." + name))


def sox_wav(seconds, rate=8000):
    """A real 16-bit PCM WAV of `seconds` of tones, as bytes."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "t.wav")
        subprocess.run(["sox", "-n", "-r", str(rate), "-b", "16", "-c", "1", out,
                        "synth", str(seconds), "sine", "300-3000"], check=True)
        with open(out, "rb") as f:
            return f.read()


def with_riff_size(data, total):
    """`data` with a RIFF header that claims `total` bytes."""
    return data[:4] + struct.pack("<I", total - 8) + data[8:]


def body_bytes(size):
    """About how long the mock's reply body is for a recording of `size` bytes."""
    return size * 4 // 3 + 200


class ProgressiveTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require(subprocess.run(["which", "sox"], capture_output=True).returncode == 0,
                        "needs sox (apt-get install sox)")
        cls.wav = sox_wav(375)  # 6 MB

    def tiers(self):
        # The default memory tier holds 6 MB; with 1M of memory it goes to disk.
        return (("memory", ()), ("disk", ("mem_cache_size=1M",)))

    def paced_mount(self, *options):
        m = self.mount(*options)
        self.mock.config(pace=PACE)
        return m

    def test_a_stat_and_first_bytes_long_before_the_end(self):
        for tier, options in self.tiers():
            with self.subTest(tier=tier):
                name = "pbx4-1603469421.1196632-first-%s.WAV" % tier
                self.mock.add(name, self.wav)
                m = self.paced_mount(*options)
                start = time.monotonic()
                size = os.stat(m.path(name)).st_size
                t_stat = time.monotonic() - start
                self.assertEqual(size, len(self.wav))
                # Unbuffered: Python's buffer would ask for st_blksize (1 MiB) at once.
                with open(m.path(name), "rb", buffering=0) as f:
                    head = f.read(64 * 1024)
                    t_first = time.monotonic() - start
                    self.assertEqual(counter(m, "in_flight"), 1, "the download already ended")
                    rest = f.readall()
                t_whole = time.monotonic() - start
                self.assertEqual(head + rest, self.wav)
                print("%s tier: stat %.3f s, first 64 KiB %.3f s, whole %.3f s (%.1f%%)"
                      % (tier, t_stat, t_first, t_whole, 100 * t_first / t_whole))
                self.assertLess(t_stat, t_whole / 10)
                self.assertLess(t_first, t_whole / 10)
                self.assertEqual(self.mock.calls(name), 1)
                self.assertGreaterEqual(counter(m, "early_replies"), 1)
                self.assertGreater(counter(m, "waiting_reads"), 0)
                self.mock.config(pace=0)

    def test_b_soxi_returns_before_the_download_ends(self):
        name = "pbx4-1603469421.1196632-soxi.WAV"
        self.mock.add(name, self.wav)
        m = self.paced_mount()
        # As a player streams it. On a seekable file Debian's sox also reads the last
        # bytes, looking for LIST chunks after the audio, which arrive last.
        cat = subprocess.Popen(["cat", m.path(name)], stdout=subprocess.PIPE)
        try:
            r = subprocess.run(["soxi", "-D", "-"], stdin=cat.stdout, capture_output=True,
                               text=True, timeout=60)
        finally:
            cat.stdout.close()
            cat.wait(60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(counter(m, "in_flight"), 1, "soxi waited for the whole download")
        self.assertAlmostEqual(float(r.stdout), 375.0, places=2)
        wait_until(lambda: counter(m, "in_flight") == 0, 60, "the download to end")

    def test_c_mmap_and_pread_at_scattered_offsets_during_the_download(self):
        rng = random.Random(14)
        for tier, options in self.tiers():
            with self.subTest(tier=tier):
                name = "pbx4-1603469421.1196632-mm-%s.WAV" % tier
                self.mock.add(name, self.wav)
                m = self.paced_mount(*options)
                n = len(self.wav)
                offsets = [rng.randrange(0, n - 5000) for _ in range(12)] + [n - 100, 0]
                with open(m.path(name), "rb") as f:
                    with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                        self.assertEqual(counter(m, "in_flight"), 1)
                        for off in offsets[:7]:
                            self.assertEqual(mm[off:off + 5000], self.wav[off:off + 5000], off)
                    for off in offsets[7:]:
                        self.assertEqual(os.pread(f.fileno(), 3000, off), self.wav[off:off + 3000], off)
                    f.seek(0)
                    self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(self.wav).digest())
                self.assertEqual(self.mock.calls(name), 1)
                self.mock.config(pace=0)

    def test_d_a_reply_cut_once_after_40_percent_continues_through_the_retry(self):
        name = "pbx4-1603469421.1196632-cut1.WAV"
        self.mock.add(name, self.wav)
        m = self.paced_mount()
        self.mock.fault(name, "truncate:%d" % int(0.4 * body_bytes(len(self.wav))), times=1)
        with open(m.path(name), "rb") as f:
            head = f.read(64 * 1024)
            self.assertEqual(counter(m, "in_flight"), 1)
            data = head + f.read()
        self.assertEqual(data, self.wav)
        self.assertEqual(self.mock.calls(name), 2)
        self.assertEqual(counter(m, "retries"), 1)

    def test_e_a_reply_cut_on_every_try_is_eio_past_the_cut_then_recovers(self):
        name = "pbx4-1603469421.1196632-cutall.WAV"
        self.mock.add(name, self.wav)
        m = self.paced_mount("retries=2")
        cut = int(0.4 * body_bytes(len(self.wav)))
        self.mock.fault(name, "truncate:%d" % cut)
        n = len(self.wav)
        start = time.monotonic()
        with open(m.path(name), "rb") as f:
            self.assertEqual(os.pread(f.fileno(), 4096, n // 10), self.wav[n // 10:n // 10 + 4096])
            self.assertEqual(harness.errno_of(os.pread, f.fileno(), 4096, n * 6 // 10), errno.EIO)
            # Never zeros or an early end, for any range not yet served.
            self.assertEqual(harness.errno_of(os.pread, f.fileno(), 4096, n - 4096), errno.EIO)
        took = time.monotonic() - start
        print("cut on every try: EIO after %.2f s, %d calls" % (took, self.mock.calls(name)))
        self.assertEqual(self.mock.calls(name), 3)  # the call and its 2 retries
        self.assertLess(took, 30)
        self.assertEqual(os.listdir(m.cache_dir), [])  # nothing partial kept
        self.mock.clear_faults()
        self.mock.config(pace=0)
        with open(m.path(name), "rb") as f:
            self.assertEqual(f.read(), self.wav)
        self.assertEqual(self.mock.calls(name), 4)

    def test_f_riff_headers_that_claim_too_much_and_too_little(self):
        m = self.paced_mount()
        small = self.wav[:600_000]
        # Too much: the stream ends short of the size readers were told. A reader
        # past the real end gets EIO, not a short read that looks like the end.
        self.mock.add("pbx4-1603469421.1196632-much.WAV", with_riff_size(small, 700_000))
        path = m.path("pbx4-1603469421.1196632-much.WAV")
        self.assertEqual(os.stat(path).st_size, 700_000)
        with open(path, "rb") as f:
            self.assertEqual(os.pread(f.fileno(), 1000, 1000), small[1000:2000])
            self.assertEqual(harness.errno_of(f.read), errno.EIO)
        # Too little: readers get no wrong byte; once the download ends the kernel
        # learns the real size, and a later stat and read see all of it.
        little = with_riff_size(small, 500_000)
        self.mock.add("pbx4-1603469421.1196632-little.WAV", little)
        path = m.path("pbx4-1603469421.1196632-little.WAV")
        self.assertEqual(os.stat(path).st_size, 500_000)
        with open(path, "rb") as f:
            early = f.read()
        self.assertEqual(early, little[:len(early)])
        wait_until(lambda: counter(m, "in_flight") == 0, 30, "the download to end")
        wait_until(lambda: os.stat(path).st_size == len(little), 10, "the real size")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), little)
        self.assertEqual(self.mock.calls("pbx4-1603469421.1196632-little.WAV"), 1)

    def test_g_cp_during_the_download_then_passthrough(self):
        name = "pbx4-1603469421.1196632-cp.WAV"
        self.mock.add(name, self.wav)
        m = self.paced_mount("mem_cache_size=1M")
        dest = os.path.join(m.workdir, "copy.WAV")
        subprocess.run(["cp", m.path(name), dest], check=True, timeout=60)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), self.wav)
        self.assertGreater(counter(m, "read_requests"), 0)  # the daemon served it
        self.assertEqual(counter(m, "passthrough_opens"), 0)
        wait_until(lambda: counter(m, "in_flight") == 0, 30, "the download to end")
        reads = counter(m, "read_requests")
        for _ in range(2):
            subprocess.run(["cp", m.path(name), dest], check=True, timeout=60)
            with open(dest, "rb") as f:
                self.assertEqual(f.read(), self.wav)
        passthrough = kernel_offers_passthrough()
        self.assertEqual(counter(m, "passthrough_opens"), 2 if passthrough else 0)
        if passthrough:
            self.assertEqual(counter(m, "read_requests"), reads)
        self.assertEqual(self.mock.calls(name), 1)


if __name__ == "__main__":
    harness.main()

"""The pcm/ view (issue 15), end to end, on real speech: espeak-ng's voice converted by
sox to GSM 6.10 (WAV49), A-law and mu-law WAV. pcm/NAME is sox's decode sample for
sample, its stat size is what a read returns, ffprobe sees 16-bit PCM at 8000 Hz mono
with the original's duration, NAME and pcm/NAME cost one call, the day folders have
it too, broken originals are EIO (or a correct shorter view) and never a crash, and a
real browser (Debian's chromium, headless) plays the view and refuses the GSM
original."""

import errno
import http.server
import json
import os
import shutil
import signal
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import harness

errno_of = harness.errno_of
DOWNLOAD = "DownloadCallRecordingByFilename"
CALL_TIME = 1600000000  # 2020-09-13 12:26:40 UTC
TEXT = ("Thank you for calling. Your call may be recorded for quality and training. "
        "Please hold while we connect you to the next available agent.")


def have(tool):
    return shutil.which(tool) is not None


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def sox_to(src, encoding, out):
    args = {"gsm": ["-e", "gsm-full-rate"], "alaw": ["-e", "a-law"], "ulaw": ["-e", "u-law"],
            "ima": ["-e", "ima-adpcm"]}[encoding]
    subprocess.run(["sox", src, "-r", "8000", "-c", "1", *args, out], check=True,
                   capture_output=True)
    return read_file(out)


def sox_samples(data, workdir, tag):
    """sox's decode of a WAV: raw signed 16-bit little-endian mono samples."""
    path = os.path.join(workdir, "decode-%s.wav" % tag)
    with open(path, "wb") as f:
        f.write(data)
    return subprocess.run(["sox", "-V1", path, "-t", "raw", "-e", "signed", "-b", "16", "-L", "-"],
                          check=True, capture_output=True).stdout


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


def link_of(path):
    """A /proc fd link's target, or "" for one closed meanwhile."""
    try:
        return os.readlink(path)
    except OSError:
        return ""


def riff_chunks(data):
    """(id, offset of the body, size) of each chunk after the WAVE tag."""
    out, at = [], 12
    while at + 8 <= len(data):
        cid, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        out.append((cid, at + 8, size))
        at += 8 + size + (size & 1)
    return out


class PcmViewTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for tool, pkg in (("espeak-ng", "espeak-ng"), ("sox", "sox"), ("ffprobe", "ffmpeg")):
            harness.require(have(tool), "needs %s (apt-get install %s)" % (tool, pkg))
        cls.tmp = tempfile.mkdtemp(prefix="euphoria-pcm-")
        speech = os.path.join(cls.tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-w", speech, TEXT], check=True, capture_output=True)
        cls.originals = {}
        for encoding in ("gsm", "alaw", "ulaw"):
            cls.originals[encoding] = sox_to(speech, encoding, os.path.join(cls.tmp, encoding + ".wav"))
        cls.ima = sox_to(speech, "ima", os.path.join(cls.tmp, "ima.wav"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def name(self, tag, offset=0):
        return "pbx4-%d.1-%s.WAV" % (CALL_TIME + offset, tag)

    def check_view(self, view, original, tag):
        """The canonical 44-byte header, then exactly sox's samples."""
        samples = sox_samples(original, self.tmp, tag)
        self.assertGreater(len(samples), 8000, "too little speech to test with")
        self.assertEqual(view[:4], b"RIFF")
        self.assertEqual(struct.unpack("<I", view[4:8])[0], len(view) - 8)
        self.assertEqual(view[8:16], b"WAVEfmt ")
        fmt = struct.unpack("<IHHIIHH", view[16:36])
        self.assertEqual(fmt, (16, 1, 1, 8000, 16000, 2, 16))
        self.assertEqual(view[36:40], b"data")
        self.assertEqual(struct.unpack("<I", view[40:44])[0], len(view) - 44)
        self.assertEqual(len(view) - 44, len(samples))
        self.assertTrue(view[44:] == samples, "the view's samples are not sox's decode")

    def test_a_each_format_decodes_as_sox_with_the_stat_size_and_ffprobe(self):
        m = self.mount()
        for i, (encoding, original) in enumerate(self.originals.items()):
            with self.subTest(encoding=encoding):
                name = self.name(encoding, i)
                self.mock.add(name, original)
                path = m.path("pcm/" + name)
                st = os.stat(path)
                view = read_file(path)
                self.assertEqual(st.st_size, len(view))
                self.check_view(view, original, encoding)
                self.assertEqual(st.st_mode & 0o777, 0o444)
                # The original's mtime (its call time), and its format for tools.
                self.assertEqual(int(st.st_mtime), int(os.stat(m.path(name)).st_mtime))
                self.assertEqual(int(st.st_mtime), CALL_TIME + i)
                self.assertEqual(os.getxattr(path, "user.euphoria.source_format"),
                                 {"gsm": b"gsm610", "alaw": b"alaw", "ulaw": b"mulaw"}[encoding])
                self.assertIn("user.euphoria.source_format", os.listxattr(path))
                probe = ffprobe(path)
                stream = probe["streams"][0]
                self.assertEqual(stream["codec_name"], "pcm_s16le")
                self.assertEqual(int(stream["sample_rate"]), 8000)
                self.assertEqual(int(stream["channels"]), 1)
                orig_duration = float(ffprobe(m.path(name))["format"]["duration"])
                # GSM: ffprobe takes the original's length from its fact chunk, while
                # the view (as sox) keeps the last block's padding: at most 319 samples.
                slack = 320 / 8000 if encoding == "gsm" else 1 / 8000
                self.assertAlmostEqual(float(probe["format"]["duration"]), orig_duration, delta=slack + 1e-3)
                self.assertEqual(self.mock.calls(name), 1)

    def test_b_name_and_its_view_make_one_call_in_either_order(self):
        m = self.mount()
        gsm = self.originals["gsm"]
        first, second = self.name("order-a"), self.name("order-b", 1)
        self.mock.add(first, gsm)
        self.mock.add(second, gsm)
        self.assertEqual(read_file(m.path(first)), gsm)
        view = read_file(m.path("pcm/" + first))
        self.check_view(view, gsm, "order-a")
        self.assertEqual(self.mock.calls(first), 1)
        self.assertEqual(read_file(m.path("pcm/" + second)), view)
        self.assertEqual(read_file(m.path(second)), gsm)
        self.assertEqual(self.mock.calls(second), 1)
        self.assertEqual(self.mock.stats()["calls"].get(DOWNLOAD, 0), 0)
        self.assertEqual(sum(self.mock.stats()["calls"].values()), 2)
        # The root lists pcm/, and pcm/ lists what the root does.
        self.assertIn("pcm", os.listdir(m.dir))
        self.assertTrue(os.path.isdir(m.path("pcm")))
        self.assertEqual(sorted(n for n in os.listdir(m.path("pcm")) if n.endswith(".WAV")),
                         sorted(n for n in os.listdir(m.dir) if n.endswith(".WAV")))
        self.assertEqual(len(os.listdir(m.path("pcm"))), len(os.listdir(m.dir)) - 2)  # less pcm and by-id

    def test_c_concurrent_readers_share_one_call_and_one_decode(self):
        m = self.mount()
        name = self.name("concurrent")
        gsm = self.originals["gsm"]
        self.mock.add(name, gsm)
        self.mock.config(latency=0.5)
        results, errors = [None] * 6, []

        def reader(i):
            try:
                results[i] = read_file(m.path("pcm/" + name if i % 3 else name))
            except OSError as e:
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(self.mock.calls(name), 1)
        views = [r for i, r in enumerate(results) if i % 3]
        self.assertTrue(all(v == views[0] for v in views))
        self.check_view(views[0], gsm, "concurrent")
        self.assertEqual(results[0], gsm)

    def test_d_the_view_is_readable_while_its_original_arrives(self):
        # About 25 s of A-law speech, paced: its view's first bytes come long before
        # the download ends, and the whole equals sox's decode.
        speech = os.path.join(self.tmp, "long.wav")
        subprocess.run(["espeak-ng", "-w", speech, " ".join([TEXT] * 4)], check=True, capture_output=True)
        alaw = sox_to(speech, "alaw", os.path.join(self.tmp, "long-alaw.wav"))
        name = self.name("progressive")
        self.mock.add(name, alaw)
        m = self.mount()
        self.mock.config(pace=max(len(alaw) // 3, 1))  # about 3 s
        path = m.path("pcm/" + name)
        size = os.stat(path).st_size
        # From the header alone: 44 bytes and two per A-law byte.
        data_size = [c for c in riff_chunks(alaw) if c[0] == b"data"][0][2]
        self.assertEqual(size, 44 + 2 * data_size)
        with open(path, "rb", buffering=0) as f:
            head = f.read(16 * 1024)
            self.assertEqual(m.counter("in_flight"), 1, "the download ended before the view's first bytes")
            rest = f.readall()
        self.mock.config(pace=0)
        view = head + rest
        self.assertEqual(len(view), size)
        self.check_view(view, alaw, "progressive")
        self.assertEqual(self.mock.calls(name), 1)

    def test_e_day_folders_have_the_view(self):
        self.mock.config(listing="on", page_cap=0, server_zone=0, record_element="CallRecording",
                         date_format="iso")
        name = self.name("day")
        ulaw = self.originals["ulaw"]
        self.mock.add(name, ulaw)
        m = self.mount("timezone=UTC")
        day = m.path("pcm/2020-09-13")
        self.assertTrue(os.path.isdir(day))
        # pcm/ lists the recent days, as the root does.
        self.assertEqual(sorted(n for n in os.listdir(m.path("pcm")) if len(n) == 10),
                         sorted(n for n in os.listdir(m.dir) if len(n) == 10))
        self.assertIn(name, os.listdir(day))
        self.assertEqual(sorted(os.listdir(day)), sorted(os.listdir(m.path("2020-09-13"))))
        view = read_file(os.path.join(day, name))
        self.check_view(view, ulaw, "day")
        self.assertEqual(os.stat(os.path.join(day, name)).st_size, len(view))
        # The same inode as pcm/NAME, and one download for the day's file, its
        # view in the day and at pcm/, and the original.
        self.assertEqual(os.stat(os.path.join(day, name)).st_ino, os.stat(m.path("pcm/" + name)).st_ino)
        self.assertEqual(read_file(m.path("pcm/" + name)), view)
        self.assertEqual(read_file(m.path("2020-09-13/" + name)), ulaw)
        self.assertEqual(self.mock.calls(name), 1)
        self.assertEqual(errno_of(os.stat, os.path.join(day, self.name("absent", 5))), errno.ENOENT)
        self.assertEqual(self.mock.calls(self.name("absent", 5)), 0)

    def test_f_broken_and_unsupported_originals(self):
        m = self.mount()
        gsm = self.originals["gsm"]
        data = [c for c in riff_chunks(gsm) if c[0] == b"data"][0]
        body_at, body_size = data[1], data[2]
        cases = {}
        # The data chunk claims more than the file holds, cut mid-block (the RIFF
        # size is the file's): sox and the view decode the whole blocks there are.
        cut = bytearray(gsm[:body_at + 65 * 40 + 30])
        struct.pack_into("<I", cut, 4, len(cut) - 8)
        cases["cut"] = bytes(cut)
        # An odd-length data chunk (a last partial block of 33 bytes) and its pad byte.
        odd = bytearray(gsm[:body_at - 4]) + struct.pack("<I", 65 * 40 + 33) + gsm[body_at:body_at + 65 * 40 + 33] + b"\0"
        struct.pack_into("<I", odd, 4, len(odd) - 8)
        cases["odd"] = bytes(odd)
        for tag, original in cases.items():
            with self.subTest(case=tag):
                name = self.name("broken-" + tag)
                self.mock.add(name, original)
                path = m.path("pcm/" + name)
                view = read_file(path)
                self.assertEqual(os.stat(path).st_size, len(view))
                self.assertEqual(len(view), 44 + 40 * 320 * 2)
                self.assertEqual(view[44:], sox_samples(original, self.tmp, tag))
        self.assertGreater(body_size, 65 * 40)
        # Another format: EOPNOTSUPP, while the original itself reads fine.
        name = self.name("ima")
        self.mock.add(name, self.ima)
        self.assertEqual(errno_of(os.stat, m.path("pcm/" + name)), errno.EOPNOTSUPP)
        self.assertEqual(read_file(m.path(name)), self.ima)
        # Not a WAV at all, a header cut short, or a file cut short of its RIFF
        # size (the original itself fails, and its view is never served): EIO.
        header_cut = bytearray(gsm[:30])
        struct.pack_into("<I", header_cut, 4, len(header_cut) - 8)
        for tag, original in (("garbage", b"RIFF" + struct.pack("<I", 200) + b"WAVEjunk" + bytes(192)),
                              ("header", bytes(header_cut)),
                              ("riff", gsm[:body_at + 65 * 40 + 30])):
            with self.subTest(case=tag):
                name = self.name("malformed-" + tag)
                self.mock.add(name, original)
                self.assertEqual(errno_of(read_file, m.path("pcm/" + name)), errno.EIO)
        # The daemon is still there and serving.
        self.assertTrue(harness.is_mounted(m.dir))
        self.assertEqual(len(read_file(m.path("pcm/" + self.name("broken-cut")))), 44 + 40 * 640)

    def test_h_a_large_view_goes_to_the_disk_tier_and_its_original_stays_in_memory(self):
        # mem_cache_size=8M: what passes 1 MiB goes to disk. The GSM original (about
        # 0.3 MB) stays in memory; its view, ten times larger, goes to disk from its
        # first byte.
        speech = os.path.join(self.tmp, "large.wav")
        subprocess.run(["espeak-ng", "-w", speech, " ".join([TEXT] * 20)], check=True, capture_output=True)
        gsm = sox_to(speech, "gsm", os.path.join(self.tmp, "large-gsm.wav"))
        self.assertLess(len(gsm), 1 << 20)
        name = self.name("large")
        self.mock.add(name, gsm)
        m = self.mount("mem_cache_size=8M", "nopassthrough")
        with open(m.path(name), "rb") as f:
            self.assertEqual(f.read(), gsm)
            self.assertIsNone(m.cache_file(), "the original went to disk")
        with open(m.path("pcm/" + name), "rb") as f:
            view = f.read()
            self.assertGreater(len(view), 1 << 20)
            fds = "/proc/%d/fd" % m.pid
            # One cache file, the view's (it may be open twice a moment: a read of
            # it while it grew splices from a descriptor of its own).
            held = {t for t in (link_of(os.path.join(fds, fd)) for fd in os.listdir(fds))
                    if t.startswith(m.cache_dir + "/")}
            self.assertEqual(len(held), 1, held)
        self.check_view(view, gsm, "large")
        self.assertEqual(self.mock.calls(name), 1)

    def test_i_cache_ttl_0_serves_the_view_each_time(self):
        # Nothing is kept: each read is a download and a decode of its own, and the
        # lookup, open and reads of one read share them.
        name = self.name("ttl0")
        alaw = self.originals["alaw"]
        self.mock.add(name, alaw)
        m = self.mount("cache_ttl=0")
        first = read_file(m.path("pcm/" + name))
        self.check_view(first, alaw, "ttl0")
        self.assertEqual(self.mock.calls(name), 1)
        time.sleep(2.5)  # past the inode's open window (2 s)
        self.assertEqual(read_file(m.path("pcm/" + name)), first)
        self.assertEqual(self.mock.calls(name), 2)

    def test_g_nopcm_removes_the_view(self):
        name = self.name("nopcm")
        self.mock.add(name, self.originals["gsm"])
        m = self.mount("nopcm")
        self.assertEqual(errno_of(os.stat, m.path("pcm")), errno.ENOENT)
        self.assertNotIn("pcm", os.listdir(m.dir))
        self.assertEqual(errno_of(os.stat, m.path("pcm/" + name)), errno.ENOENT)
        self.assertEqual(read_file(m.path(name)), self.originals["gsm"])


PAGE = """<!doctype html><html><body>
<audio id="a" preload="auto" muted></audio>
<script>
const a = document.getElementById("a");
let sent = false;
function send(result) {
  if (sent) return;
  sent = true;
  fetch("/result", {method: "POST", body: JSON.stringify(result)});
}
a.addEventListener("canplaythrough", () => send({event: "canplaythrough", duration: a.duration}));
a.addEventListener("error", () => send({event: "error", code: a.error ? a.error.code : 0}));
a.src = "/mnt/" + decodeURIComponent(location.hash.slice(1));
a.load();
</script></body></html>
"""


class BrowserServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """The page, the mount's files under /mnt/, and POST /result from the page."""
    daemon_threads = True

    def __init__(self, mount_dir):
        self.mount_dir = mount_dir
        self.results = []
        self.arrived = threading.Event()
        super().__init__(("127.0.0.1", 0), BrowserHandler)


class BrowserHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/page"):
            body, kind = PAGE.encode(), "text/html"
        elif self.path.startswith("/mnt/"):
            rel = self.path[len("/mnt/"):].split("?")[0]
            path = os.path.join(self.server.mount_dir, *rel.split("/"))
            try:
                body = read_file(path)
            except OSError:
                self.send_error(404)
                return
            kind = "audio/wav"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.server.results.append(json.loads(self.rfile.read(n)))
        self.server.arrived.set()
        self.send_response(204)
        self.end_headers()


def chromium_binary():
    for b in ("chromium", "chromium-browser"):
        if have(b):
            return shutil.which(b)
    return None


class BrowserTest(harness.E2ETestCase):
    """Debian's chromium, headless, plays pcm/NAME and refuses the GSM original."""

    TIMEOUT = 60

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require(chromium_binary() is not None, "needs chromium (apt-get install chromium)")
        harness.require(have("espeak-ng") and have("sox"), "needs espeak-ng and sox")
        cls.tmp = tempfile.mkdtemp(prefix="euphoria-browser-")
        speech = os.path.join(cls.tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-w", speech, TEXT], check=True, capture_output=True)
        cls.gsm = sox_to(speech, "gsm", os.path.join(cls.tmp, "gsm.wav"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def load(self, server, rel):
        """What the page reports for the mount's file `rel`: one result, or a failure
        after TIMEOUT seconds."""
        server.results.clear()
        server.arrived.clear()
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        url = "http://127.0.0.1:%d/page#%s" % (server.server_address[1], rel)
        proc = subprocess.Popen(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             "--user-data-dir=" + profile, url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            got = server.arrived.wait(self.TIMEOUT)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(30)
        self.assertTrue(got, "chromium reported nothing within %d s" % self.TIMEOUT)
        return server.results[0]

    def test_chromium_plays_the_view_and_not_the_gsm_original(self):
        name = "pbx4-%d.1-browser.WAV" % CALL_TIME
        self.mock.add(name, self.gsm)
        m = self.mount()
        server = BrowserServer(m.dir)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            view = self.load(server, "pcm/" + name)
            self.assertEqual(view["event"], "canplaythrough", view)
            samples = (os.stat(m.path("pcm/" + name)).st_size - 44) // 2
            self.assertAlmostEqual(view["duration"], samples / 8000, delta=0.01)
            original = self.load(server, name)
            self.assertEqual(original["event"], "error", original)
            self.assertIn(original["code"], (3, 4))  # MEDIA_ERR_DECODE or _SRC_NOT_SUPPORTED
            self.assertEqual(self.mock.calls(name), 1)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    harness.main()

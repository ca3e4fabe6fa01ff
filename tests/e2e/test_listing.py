"""Day folders from GetCallRecordings, end to end: names, sizes and mtimes without a
download, days in the mount's zone, paging under a server cap, the TTL and shared
calls, errors, MD5, rsync, and a listing whose FileSize is wrong."""

import base64
import errno
import hashlib
import os
import shutil
import subprocess
import threading
import unittest

import harness


errno_of = harness.errno_of

# 2020-10-23 21:30 and 22:30 UTC: 23:30 and 00:30 in Paris (CEST).
LATE_UTC = 1603488600
EARLY_UTC = 1603492200


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def data_of(n, seed):
    return bytes((seed + i * 7) % 256 for i in range(n))


class ListingTest(harness.E2ETestCase):
    def setUp(self):
        super().setUp()
        self.mock.config(listing="on", page_cap=0, server_zone=0, record_element="CallRecording",
                         date_format="iso")
        self.mock.reset()

    def listing_calls(self):
        return self.mock.stats()["listing_calls"]

    def test_day_lists_names_sizes_and_mtimes_without_download(self):
        names = ["pbx4-%d.1-%d.WAV" % (1600000000 + 3600 * i, i) for i in range(3)]  # 2020-09-13
        for i, name in enumerate(names):
            self.mock.synthetic(name, 1000 + i)
        for element in ("CallRecording", "Row"):
            with self.subTest(element=element):
                self.mock.config(record_element=element)
                m = self.mount("timezone=UTC")
                day = m.path("2020-09-13")
                listed = sorted(os.listdir(day))
                self.assertEqual(listed, sorted(names))
                for i, name in enumerate(names):
                    st = os.stat(os.path.join(day, name))
                    self.assertEqual(st.st_size, 1000 + i)
                    self.assertEqual(int(st.st_mtime), 1600000000 + 3600 * i)
                    self.assertEqual(st.st_mode & 0o777, 0o444)
                # ls -l and find -newermt work from the listing alone.
                out = subprocess.run(["find", day, "-type", "f", "-newermt", "2020-09-13 12:30:00"],
                                     env=dict(os.environ, TZ="UTC"),
                                     capture_output=True, text=True, check=True).stdout.split()
                self.assertEqual(sorted(os.path.basename(p) for p in out), sorted(names[1:]))
                stats = self.mock.stats()
                self.assertEqual(sum(stats["calls"].values()), 0)  # no download
                self.assertGreater(stats["listing_calls"], 0)
                m.close()
                self.mounts.remove(m)
                self.mock.reset()

    def test_root_shows_recent_days_and_never_sends_day_names_upstream(self):
        m = self.mount("timezone=UTC", "listing_days=3")
        root = os.listdir(m.dir)
        days = [n for n in root if len(n) == 10 and n[4] == "-"]
        self.assertEqual(len(days), 3)
        self.assertTrue(os.path.isdir(m.path("1999-01-01")))
        self.assertEqual(self.mock.stats()["total_calls"], 0)

    def test_nolisting_turns_day_folders_off(self):
        m = self.mount("nolisting")
        self.assertEqual(os.listdir(m.dir), ["pcm"])  # the pcm/ view stays, without days
        self.assertEqual(os.listdir(m.path("pcm")), [])
        # A day's name is then just a name, looked up as a recording.
        self.assertEqual(errno_of(os.stat, m.path("2020-10-23")), errno.ENOENT)
        self.assertEqual(self.mock.calls("2020-10-23"), 1)
        self.assertEqual(self.listing_calls(), 0)

    def test_calls_land_on_the_day_of_the_mount_zone(self):
        # Without an epoch in the name, the DateStamp (here the server's wall clock,
        # the US format) is read in `timezone`.
        self.mock.add_recordings([
            {"name": "late.WAV", "size": 100, "call_time": LATE_UTC},
            {"name": "early.WAV", "size": 100, "call_time": EARLY_UTC}])
        self.mock.config(server_zone=2, date_format="us")
        m = self.mount("timezone=Europe/Paris")
        self.assertEqual(os.listdir(m.path("2020-10-23")), ["late.WAV"])
        self.assertEqual(os.listdir(m.path("2020-10-24")), ["early.WAV"])
        self.assertEqual(int(os.stat(os.path.join(m.path("2020-10-23"), "late.WAV")).st_mtime), LATE_UTC)
        # A name's epoch is the call time, whatever the server's zone.
        late, early = "pbx4-%d.1-9.WAV" % LATE_UTC, "pbx4-%d.2-9.WAV" % EARLY_UTC
        self.mock.synthetic(late, 100)
        self.mock.synthetic(early, 100)
        self.mock.config(server_zone=-5, date_format="iso_t")
        paris = self.mount("timezone=Europe/Paris")
        self.assertIn(late, os.listdir(paris.path("2020-10-23")))
        self.assertNotIn(early, os.listdir(paris.path("2020-10-23")))
        self.assertIn(early, os.listdir(paris.path("2020-10-24")))
        ny = self.mount("timezone=America/New_York")
        self.assertIn(late, os.listdir(ny.path("2020-10-23")))
        self.assertIn(early, os.listdir(ny.path("2020-10-23")))

    def test_1200_records_under_a_page_cap_of_500(self):
        t0 = 1604534400  # 2020-11-05 00:00 UTC
        self.mock.add_recordings([{"name": "p-%04d.WAV" % i, "size": 100, "call_time": t0 + i * 60}
                                  for i in range(1200)])
        self.mock.config(page_cap=500)
        m = self.mount("timezone=UTC", "listing_page=1000")
        self.assertEqual(len(os.listdir(m.path("2020-11-05"))), 1200)
        self.assertEqual(self.listing_calls(), 3)  # 500, 500, 200
        # Within the TTL: no call at all, for the listing or for the stats.
        subprocess.run(["ls", "-l", m.path("2020-11-05")], check=True, capture_output=True)
        self.assertEqual(self.mock.stats()["total_calls"], 3)

    def test_20000_records_list_in_bounded_memory(self):
        t0 = 1606176000  # 2020-11-24 00:00 UTC
        self.mock.add_recordings([{"name": "big-%05d.WAV" % i, "size": 100, "call_time": t0 + i * 4}
                                  for i in range(20000)], checksums=False)
        # Pages of 10,000 records, some 6 MB of XML each: a DOM of one would cost
        # several times that.
        env = dict(os.environ)
        if harness.SANITIZED:
            # ASan holds freed blocks back (256 MB by default): keep that small, so RSS
            # shows what the code holds. Its redzones and shadow still add some.
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64")
        m = self.mount("timezone=UTC", "listing_page=10000", env=env)
        before = harness.rss_peak_kb(m.pid)
        self.assertEqual(len(os.listdir(m.path("2020-11-24"))), 20000)
        grown_mb = (harness.rss_peak_kb(m.pid) - before) / 1024
        print("daemon peak RSS grew %.1f MB listing 20,000 records" % grown_mb)
        self.assertEqual(self.listing_calls(), 3)  # 10,000, 10,000, then none
        # The names and fields of 20,000 records, and their inodes: a few MB each.
        self.assertLess(grown_mb, 40, "the daemon's peak RSS grew %.1f MB" % grown_mb)

    def test_concurrent_ls_of_one_day_share_calls(self):
        self.mock.add_recordings([{"name": "c%d.WAV" % i, "size": 100, "call_time": 1605000000 + i}
                                  for i in range(3)])  # 2020-11-10
        single = self.mount("timezone=UTC")
        self.assertEqual(len(os.listdir(single.path("2020-11-10"))), 3)
        one_listing = self.listing_calls()
        self.mock.config(latency=0.5)
        m = self.mount("timezone=UTC")
        results = []
        threads = [threading.Thread(target=lambda: results.append(sorted(os.listdir(m.path("2020-11-10")))))
                   for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [["c0.WAV", "c1.WAV", "c2.WAV"]] * 5)
        self.assertEqual(self.listing_calls(), one_listing)

    def test_denied_listing_is_eacces_unknown_action_eopnotsupp_names_still_work(self):
        self.mock.add(name := "pbx4-1603469421.1196632-err.WAV", data_of(500, 3))
        for mode, err in (("denied", errno.EACCES), ("unknown", errno.EOPNOTSUPP)):
            with self.subTest(mode=mode):
                self.mock.config(listing=mode)
                m = self.mount("timezone=UTC")
                self.assertEqual(errno_of(os.listdir, m.path("2020-10-23")), err)
                self.assertEqual(errno_of(os.stat, os.path.join(m.path("2020-10-23"), name)), err)
                self.assertEqual(read_file(m.path(name)), data_of(500, 3))

    def test_md5_xattr_and_verify(self):
        good = data_of(3000, 5)
        self.mock.add_recordings([
            {"name": "good.WAV", "data_b64": base64.b64encode(good).decode(),
             "call_time": 1605100000, "note": "call back"},
            {"name": "bad.WAV", "data_b64": base64.b64encode(good).decode(),
             "call_time": 1605100001, "md5": "0" * 32}])  # 2020-11-11
        m = self.mount("timezone=UTC")
        day = m.path("2020-11-11")
        path = os.path.join(day, "good.WAV")
        self.assertEqual(os.getxattr(path, "user.euphoria.md5").decode(), hashlib.md5(good).hexdigest())
        self.assertEqual(os.getxattr(path, "user.euphoria.note").decode(), "call back")
        self.assertEqual(os.getxattr(path, "user.euphoria.direction").decode(), "Inbound")
        self.assertIn("user.euphoria.unique_id", os.listxattr(path))
        self.assertNotIn("user.euphoria.note", os.listxattr(os.path.join(day, "bad.WAV")))
        # Without verify a wrong MD5 is logged and counted; the bytes are served.
        self.assertEqual(read_file(os.path.join(day, "bad.WAV")), good)
        self.assertEqual(m.counter("md5_mismatches"), 1)
        self.assertEqual(read_file(path), good)
        self.assertEqual(m.counter("md5_mismatches"), 1)

        v = self.mount("timezone=UTC", "verify=md5")
        vday = v.path("2020-11-11")
        self.assertEqual(errno_of(read_file, os.path.join(vday, "bad.WAV")), errno.EIO)
        self.assertEqual(errno_of(read_file, os.path.join(vday, "bad.WAV")), errno.EIO)
        self.assertEqual(self.mock.calls("bad.WAV"), 2)  # never cached
        self.assertEqual(read_file(os.path.join(vday, "good.WAV")), good)

    def test_listed_file_and_root_name_are_one_download(self):
        name = "pbx4-1605200000.7-1.WAV"  # 2020-11-12
        data = data_of(4000, 9)
        self.mock.add(name, data)
        m = self.mount("timezone=UTC")
        self.assertEqual(read_file(os.path.join(m.path("2020-11-12"), name)), data)
        self.assertEqual(read_file(m.path(name)), data)
        self.assertEqual(self.mock.calls(name), 1)

    def test_by_id_readlink_then_read_is_one_call(self):
        name = "pbx4-1606000000.1196632-1001.WAV"  # 2020-11-21, a day no other test uses
        data = data_of(3000, 13)
        self.mock.add(name, data)
        self.mock.add_recordings([{"name": "../evil.WAV", "size": 100, "unique_id": "666.1"},
                                  {"name": "a/b.WAV", "size": 100, "unique_id": "666.2"},
                                  # Safe components that the link must not point at:
                                  # a day folder, by-id itself, a dot-name, pcm/.
                                  {"name": "2020-11-21", "size": 100, "unique_id": "666.3"},
                                  {"name": "by-id", "size": 100, "unique_id": "666.4"},
                                  {"name": ".hidden.WAV", "size": 100, "unique_id": "666.5"},
                                  {"name": "pcm", "size": 100, "unique_id": "666.6"}])
        m = self.mount("timezone=UTC")
        link = os.path.join(m.path("by-id"), "1606000000.1196632")
        self.assertEqual(os.readlink(link), "../" + name)
        self.assertEqual(read_file(link), data)
        stats = self.mock.stats()
        self.assertEqual((stats["by_id_calls"], stats["total_calls"]), (1, 1))
        self.assertIn("1606000000.1196632", os.listdir(m.path("by-id")))
        # An unknown id is ENOENT, and the answer is kept for the TTL.
        unknown = os.path.join(m.path("by-id"), "999.9")
        self.assertEqual(errno_of(os.readlink, unknown), errno.ENOENT)
        self.assertEqual(errno_of(os.readlink, unknown), errno.ENOENT)
        self.assertEqual(self.mock.stats()["by_id_calls"], 2)
        # A fileName that is not one safe path component, or that names what the
        # mount would never fetch by that name, is EIO.
        for uid in ("666.1", "666.2", "666.3", "666.4", "666.5", "666.6"):
            self.assertEqual(errno_of(os.readlink, os.path.join(m.path("by-id"), uid)), errno.EIO)

    @unittest.skipUnless(shutil.which("rsync"), "rsync is not installed")
    def test_rsync_twice_transfers_nothing_the_second_time(self):
        recs = {"pbx4-%d.2-%d.WAV" % (1605300000 + i * 100, i): data_of(2000 + i, i) for i in range(3)}
        for name, data in recs.items():  # 2020-11-13
            self.mock.add(name, data)
        m = self.mount("timezone=UTC")
        dest = os.path.join(m.workdir, "archive") + "/"
        src = m.path("2020-11-13") + "/"
        subprocess.run(["rsync", "-a", src, dest], check=True, capture_output=True)
        for name, data in recs.items():
            self.assertEqual(read_file(dest + name), data)
        downloads = sum(self.mock.stats()["calls"].values())
        self.assertEqual(downloads, 3)
        out = subprocess.run(["rsync", "-a", "--itemize-changes", src, dest], check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual([l for l in out.splitlines() if l.startswith(">f")], [])
        self.assertEqual(sum(self.mock.stats()["calls"].values()), downloads)

    def test_download_wins_over_a_wrong_file_size(self):
        data = data_of(5000, 11)
        self.mock.add_recordings([
            {"name": "short.WAV", "data_b64": base64.b64encode(data).decode(),
             "call_time": 1605400000, "listed_size": 6000},
            {"name": "long.WAV", "data_b64": base64.b64encode(data).decode(),
             "call_time": 1605400001, "listed_size": 4000},
            {"name": "long-at-once.WAV", "data_b64": base64.b64encode(data).decode(),
             "call_time": 1605400002, "listed_size": 4000}])  # 2020-11-15
        m = self.mount("timezone=UTC")
        day = m.path("2020-11-15")
        short, long_ = os.path.join(day, "short.WAV"), os.path.join(day, "long.WAV")
        self.assertEqual(os.stat(short).st_size, 6000)
        # Never a byte past the real end, and never zeros.
        self.assertEqual(read_file(short), data)
        harness.wait_until(lambda: os.stat(short).st_size == 5000, 5, "the kernel to learn the real size")
        self.assertEqual(os.stat(long_).st_size, 4000)
        with open(long_, "rb") as f:
            f.read(1)
        harness.wait_until(lambda: os.stat(long_).st_size == 5000, 5, "the longer size")
        self.assertEqual(read_file(long_), data)
        # Read at once, as cp does, before the kernel can have heard of the real size:
        # every byte still comes, none cut at the listing's 4000.
        at_once = os.path.join(day, "long-at-once.WAV")
        self.assertEqual(os.stat(at_once).st_size, 4000)
        self.assertEqual(read_file(at_once), data)


if __name__ == "__main__":
    harness.main()

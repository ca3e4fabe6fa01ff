"""Security: hostile names, other local users, a non-dumpable daemon."""

import errno
import os
import stat
import subprocess
import time

import harness

NOBODY = harness.NOBODY
as_nobody = harness.as_nobody


class SecurityTest(harness.E2ETestCase):

    def test_hostile_names_are_sent_exactly_or_refused(self):
        exact = [
            "a&b <c> \"d\" 'e' ]]>.WAV",
            "&amp;&#x41;.WAV",
            "<![CDATA[x]]>.WAV",
            "tab\there.WAV",
            "new\nline.WAV",
            "carriage\rreturn.WAV",
            "\u00e9t\u00e9 \u20ac \U0001F600.WAV",
            "n" * 251 + ".WAV",  # 255 bytes, the longest name a folder holds
        ]
        for i, name in enumerate(exact):
            self.mock.add(name, b"recording %d" % i)
        m = self.mount()
        for i, name in enumerate(exact):
            with self.subTest(name=name[:40]):
                with open(os.path.join(m.dir, name), "rb") as f:
                    self.assertEqual(f.read(), b"recording %d" % i)
                self.assertEqual(self.mock.calls(name), 1)
        refused = [b"bad\xff\xfe.WAV", b"ctl\x01.WAV", b"esc\x1b[31m.WAV", b"half\xc3.WAV",
                   b"overlong\xc0\xaf.WAV"]
        self.mock.reset()
        for raw in refused:
            with self.subTest(name=raw):
                try:
                    os.stat(os.path.join(m.dir.encode(), raw))
                    self.fail("accepted")
                except OSError as e:
                    self.assertIn(e.errno, (errno.EINVAL, errno.ENOENT))
        self.assertEqual(self.mock.stats()["total_calls"], 0)  # nothing malformed was sent
        with self.assertRaises(OSError) as ctx:
            os.stat(os.path.join(m.dir, "n" * 256))
        self.assertEqual(ctx.exception.errno, errno.ENAMETOOLONG)

    def test_other_users_are_kept_out_by_default(self):
        self.mock.synthetic("private.WAV", 1000)
        m = self.mount()
        os.chmod(m.workdir, 0o755)
        os.stat(m.path("private.WAV"))
        r = as_nobody("cat", m.path("private.WAV"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)

    def test_allow_other_enforces_modes_in_the_kernel(self):
        self.mock.synthetic("shared.WAV", 1000)
        self.mock.synthetic("secret.WAV", 1000)
        m = self.mount("allow_other")
        os.chmod(m.workdir, 0o755)
        r = as_nobody("cat", m.path("shared.WAV"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.mock.raw("shared.WAV"))
        with open("/proc/self/mountinfo") as f:
            line = [l for l in f if l.split()[4] == os.path.realpath(m.dir)][0]
        self.assertIn("default_permissions", line)
        self.assertIn("allow_other", line)
        m.unmount()
        # A umask of 077 leaves 0400/0500: the kernel refuses other users.
        m2 = self.mount("allow_other", "umask=077")
        os.chmod(m2.workdir, 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(m2.dir).st_mode), 0o500)
        os.stat(m2.path("secret.WAV"))
        r = as_nobody("cat", m2.path("secret.WAV"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)
        self.assertEqual(self.mock.calls("secret.WAV"), 1)  # refused before any call

    def test_daemon_is_not_dumpable(self):
        """Run by an ordinary user, a non-dumpable process's /proc files belong to
        root, so that user's other processes cannot ptrace it or read its memory."""
        um = harness.UserMount(self.mock)
        try:
            self.assertEqual(um.result.returncode, 0, um.result.stderr)
            pid = um.pid
            self.assertIsNotNone(pid)
            self.assertEqual(os.stat("/proc/%d/status" % pid).st_uid, 0)
            with open("/proc/%d/status" % pid) as f:
                uid_line = [l for l in f if l.startswith("Uid:")][0]
            self.assertEqual(int(uid_line.split()[1]), NOBODY.pw_uid)
            # A process of the same user that did not opt out is its own.
            sleeper = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY.pw_uid,
                                        "--regid=%d" % NOBODY.pw_gid, "--clear-groups", "sleep", "5"])
            time.sleep(0.2)
            self.assertEqual(os.stat("/proc/%d/status" % sleeper.pid).st_uid, NOBODY.pw_uid)
            sleeper.kill()
            sleeper.wait()
            r = as_nobody("cat", "/proc/%d/environ" % pid)
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(um.unmount().returncode, 0)
            self.assertFalse(os.path.exists("/proc/%d" % pid))
        finally:
            um.close()


if __name__ == "__main__":
    harness.main()

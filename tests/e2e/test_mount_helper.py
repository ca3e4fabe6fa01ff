"""mount.euphoria as a mount(8) helper: mount -t, fstab, flags, credentials, exit
codes, daemon, signals and logs. The real binary against the mock API."""

import contextlib
import errno
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import harness

HELPER_LINK = "/usr/sbin/mount.euphoria"


@contextlib.contextmanager
def helper_installed():
    """mount(8) runs /sbin/mount.euphoria: point it at the build for the test."""
    existing = os.path.lexists(HELPER_LINK)
    if existing and os.path.realpath(HELPER_LINK) != os.path.realpath(harness.BINARY):
        raise AssertionError(HELPER_LINK + " exists and is not this build; refusing to replace it")
    if not existing:
        os.symlink(harness.BINARY, HELPER_LINK)
    try:
        yield
    finally:
        if not existing:
            os.unlink(HELPER_LINK)


@contextlib.contextmanager
def syslog_capture():
    """A /dev/log listener, so the daemon's syslog lines can be read back."""
    harness.require(not os.path.exists("/dev/log"), "/dev/log is taken by a syslog daemon")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    lines = []
    stop = threading.Event()

    def pump():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                lines.append(sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                pass

    t = threading.Thread(target=pump)
    t.start()
    try:
        yield lines
    finally:
        stop.set()
        t.join()
        sock.close()
        os.unlink("/dev/log")


class MountHelperTest(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.work = tempfile.mkdtemp(prefix="euphoria-helper-")
        self.dir = os.path.join(self.work, "mnt")
        self.cache = os.path.join(self.work, "cache")
        os.makedirs(self.dir)
        self.cred = harness.write_credentials(self.work)

    def tearDown(self):
        if harness.is_mounted(self.dir):
            subprocess.run(["fusermount3", "-uz", self.dir], check=False)
        subprocess.run(["rm", "-rf", self.work], check=False)
        super().tearDown()

    def opts(self, *extra, cred=None, endpoint=None):
        return ",".join(["credentials=" + (cred or self.cred),
                         "endpoint=" + (endpoint or self.mock.endpoint),
                         "cafile=" + self.mock.ca, "cache_dir=" + self.cache, *extra])

    def helper(self, *args, env=None):
        return subprocess.run([harness.BINARY, *args], capture_output=True, text=True,
                              timeout=60, env=env)

    def wait_unmounted(self, pid):
        deadline = time.time() + 15
        while (harness.is_mounted(self.dir) or (pid and os.path.exists("/proc/%d" % pid))) \
                and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(harness.is_mounted(self.dir))
        if pid:
            self.assertFalse(os.path.exists("/proc/%d" % pid), "daemon still running")

    def test_mount_t_and_umount(self):
        self.mock.synthetic("pbx4-1603469421.1-m.WAV", 5000)
        with helper_installed():
            r = subprocess.run(["mount", "-t", "euphoria", "demo", self.dir, "-o", self.opts()],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(harness.is_mounted(self.dir))
            pid = harness.daemon_pid(self.dir)
            self.assertEqual(len(open(os.path.join(self.dir, "pbx4-1603469421.1-m.WAV"), "rb").read()), 5000)
            self.assertEqual(len(os.listdir(self.cache)), 0)  # small: memory tier
            r = subprocess.run(["umount", self.dir], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_unmounted(pid)

    def test_fstab_line_with_mount_T(self):
        self.mock.synthetic("f.WAV", 100)
        fstab = os.path.join(self.work, "fstab")
        with open(fstab, "w") as f:
            f.write("# test fstab\n")
            f.write("demo  %s  euphoria  %s,_netdev,nofail,noauto  0  0\n" % (self.dir, self.opts()))
        with helper_installed():
            r = subprocess.run(["mount", "-T", fstab, self.dir], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.stat(os.path.join(self.dir, "f.WAV")).st_size, 100)
            # mount(8) adds rw: noted, and the mount is read-only all the same.
            self.assertIn("read-only", r.stderr)
            with open("/proc/self/mountinfo") as mi:
                line = [l for l in mi if l.split()[4] == os.path.realpath(self.dir)][0]
            self.assertIn("ro", line.split()[5].split(","))
            self.assertIn("fuse.euphoria", line)
            pid = harness.daemon_pid(self.dir)
            self.assertEqual(subprocess.run(["umount", self.dir], timeout=30).returncode, 0)
            self.wait_unmounted(pid)

    def mounts_here(self):
        with open("/proc/self/mountinfo") as mi:
            return [l for l in mi if l.split()[4] == os.path.realpath(self.dir)]

    def test_mount_a_twice_leaves_one_mount(self):
        """The source in the mount table is fstab's first field, so mount -a sees the
        line is mounted already; a second helper call is refused with exit 32."""
        self.mock.synthetic("twice.WAV", 100)
        fstab = os.path.join(self.work, "fstab")
        with open(fstab, "w") as f:
            f.write("demo  %s  euphoria  %s,_netdev,nofail  0  0\n" % (self.dir, self.opts()))
        with helper_installed():
            for attempt in range(2):
                r = subprocess.run(["mount", "-a", "-T", fstab, "-t", "euphoria"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, "attempt %d: %s" % (attempt, r.stderr))
            lines = self.mounts_here()
            self.assertEqual(len(lines), 1, lines)
            fields = lines[0].split()
            self.assertEqual(fields[fields.index("-") + 2], "demo")
            pid = harness.daemon_pid(self.dir)
            # The helper itself, called again, refuses: mount(8)'s exit code 32.
            r = self.helper("demo", self.dir, "-o", self.opts())
            self.assertEqual(r.returncode, 32, r.stderr)
            self.assertIn("already mounted", r.stderr)
            self.assertEqual(len(self.mounts_here()), 1)
            self.assertEqual(os.stat(os.path.join(self.dir, "twice.WAV")).st_size, 100)
            self.assertEqual(subprocess.run(["umount", self.dir], timeout=30).returncode, 0)
            self.wait_unmounted(pid)

    def test_two_mounts_never_share_a_cache_folder(self):
        self.mock.synthetic("big.WAV", 10 << 20)  # past mem_cache_size / 8: the disk tier
        r = self.helper("demo", self.dir, "-o", self.opts())
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = harness.daemon_pid(self.dir)
        f = open(os.path.join(self.dir, "big.WAV"), "rb")
        other = os.path.join(self.work, "other")
        os.makedirs(other)
        try:
            r = subprocess.run([harness.BINARY, "demo", other, "-o", self.opts()],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 32, r.stderr)
            self.assertIn("cache_dir=", r.stderr)
            self.assertFalse(harness.is_mounted(other))
            # The first mount's open file survived: nobody purged its folder.
            self.assertEqual(f.read(), self.mock.raw("big.WAV"))
            self.assertEqual(len([n for n in os.listdir(self.cache) if n.startswith("rec-")]), 1)
        finally:
            f.close()
        subprocess.run(["fusermount3", "-u", self.dir], check=True, timeout=30)
        self.wait_unmounted(pid)
        # Once it is gone, the folder is free again.
        r = subprocess.run([harness.BINARY, "demo", other, "-o", self.opts()],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = harness.daemon_pid(other)
        subprocess.run(["fusermount3", "-u", other], check=True, timeout=30)
        deadline = time.time() + 15
        while pid and os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)

    def test_fake_validates_and_mounts_nothing(self):
        r = self.helper("demo", self.dir, "-f", "-o", self.opts())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(harness.is_mounted(self.dir))
        bad = self.helper("demo", self.dir, "-f", "-o", self.opts("cache_ttl=99"))
        self.assertEqual(bad.returncode, 1)
        self.assertIn("cache-ttl", bad.stderr)

    def test_time_zone_unknown_or_missing(self):
        # An unknown zone asked for is bad usage.
        bad = self.helper("demo", self.dir, "-f", "-o", self.opts("timezone=Nowhere/Else"))
        self.assertEqual(bad.returncode, 1)
        self.assertIn("timezone", bad.stderr)
        # None asked for, and the host has none (a minimal container: here a private
        # mount namespace with /etc/localtime hidden): UTC, with a warning.
        script = ('mount --bind /dev/null /etc/localtime && exec "$0" "$@"')

        def hidden_localtime(env=None):
            cmd = ["sh", "-c", script, harness.BINARY, "demo", self.dir, "-f", "-o", self.opts()]
            r = subprocess.run(["unshare", "-m", "--propagation", "private"] + cmd,
                               capture_output=True, text=True, timeout=60, env=env)
            if "cannot change root filesystem propagation" in r.stderr:
                # A chroot, whose root is no mount point (the deb13 stage): its own
                # private namespace already keeps the bind from the host.
                r = subprocess.run(["unshare", "-m", "--propagation", "unchanged"] + cmd,
                                   capture_output=True, text=True, timeout=60, env=env)
            return r

        r = hidden_localtime()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("day folders use UTC", r.stderr)
        self.assertFalse(harness.is_mounted(self.dir))
        # $TZ naming a zone is the host's zone, as glibc reads it; one naming none
        # is said so, and then the same fallback.
        for tz, warned in ((":Europe/Paris", False), ("Europe/Paris", False), ("Nowhere/Else", True)):
            r = hidden_localtime(dict(os.environ, TZ=tz))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual("day folders use UTC" in r.stderr, warned, (tz, r.stderr))
            self.assertEqual("TZ=" in r.stderr, warned, (tz, r.stderr))

    def test_sloppy_ignores_unknown_options(self):
        r = self.helper("demo", self.dir, "-o", self.opts("frobnicate=3"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("frobnicate", r.stderr)
        self.assertFalse(harness.is_mounted(self.dir))
        r = self.helper("demo", self.dir, "-s", "-o", self.opts("frobnicate=3"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("frobnicate", r.stderr)
        self.assertTrue(harness.is_mounted(self.dir))

    def test_world_readable_credentials_refused(self):
        os.chmod(self.cred, 0o644)
        r = self.helper("demo", self.dir, "-o", self.opts())
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.cred, r.stderr)
        self.assertIn("chmod 600", r.stderr)
        self.assertEqual(self.mock.stats()["total_calls"], 0)

    def test_wrong_key_fails_the_mount_at_once(self):
        cred = harness.write_credentials(self.work, key="not-the-key")
        r = self.helper("demo", self.dir, "-o", self.opts(cred=cred))
        self.assertEqual(r.returncode, 32)
        self.assertIn("Authorization Failed", r.stderr)
        self.assertNotIn("not-the-key", r.stderr)
        self.assertFalse(harness.is_mounted(self.dir))

    def test_untrusted_certificate_fails_the_mount(self):
        r = subprocess.run([harness.BINARY, "demo", self.dir, "-o",
                            "credentials=%s,endpoint=%s,cache_dir=%s" % (self.cred, self.mock.endpoint, self.cache)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 32)
        self.assertIn("TLS", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_cafile_without_a_certificate_refused(self):
        junk = os.path.join(self.work, "junk.pem")
        with open(junk, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        opts = ",".join(["credentials=" + self.cred, "endpoint=" + self.mock.endpoint,
                         "cafile=" + junk, "cache_dir=" + self.cache])
        r = self.helper("demo", self.dir, "-o", opts)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), "mount.euphoria: cafile %s holds no PEM certificate" % junk)
        self.assertFalse(harness.is_mounted(self.dir))
        self.assertEqual(self.mock.stats()["connections"], 0)

    def test_http_endpoint_refused_before_any_request(self):
        http = "http://127.0.0.1:%d/Euphoria.Api.aspx" % self.mock.api_port
        r = self.helper("demo", self.dir, "-o", self.opts(endpoint=http))
        self.assertEqual(r.returncode, 1)
        self.assertIn("https://", r.stderr)
        s = self.mock.stats()
        self.assertEqual(s["total_calls"], 0)
        self.assertEqual(s["connections"], 0)

    def test_key_on_the_command_line_refused(self):
        for opt in ("auth=demo-key-123", "key=demo-key-123"):
            r = self.helper("demo", self.dir, "-o", self.opts(opt))
            self.assertEqual(r.returncode, 1)
            self.assertIn("credentials=", r.stderr)
            self.assertNotIn("demo-key-123", r.stderr)
        self.assertEqual(self.mock.stats()["total_calls"], 0)

    def test_tenant_in_credentials_must_agree(self):
        cred = harness.write_credentials(self.work, tenant="othercorp")
        r = self.helper("demo", self.dir, "-o", self.opts(cred=cred))
        self.assertEqual(r.returncode, 1)
        self.assertIn("othercorp", r.stderr)

    def test_key_from_environment_is_scrubbed(self):
        self.mock.synthetic("env.WAV", 100)
        opts = ",".join(["endpoint=" + self.mock.endpoint, "cafile=" + self.mock.ca,
                         "cache_dir=" + self.cache])
        env = dict(os.environ, EUPHORIA_AUTH=harness.KEY)
        r = self.helper("demo", self.dir, "-o", opts, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = harness.daemon_pid(self.dir)
        self.assertEqual(os.stat(os.path.join(self.dir, "env.WAV")).st_size, 100)
        with open("/proc/%d/environ" % pid, "rb") as f:
            self.assertNotIn(harness.KEY.encode(), f.read())
        subprocess.run(["umount", self.dir], check=True)
        self.wait_unmounted(pid)

    def test_sigterm_unmounts_cleanly_and_purges_the_cache(self):
        self.mock.synthetic("big.WAV", 3 << 20)
        r = self.helper("demo", self.dir, "-o", self.opts("mem_cache_size=1M"))
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = harness.daemon_pid(self.dir)
        open(os.path.join(self.dir, "big.WAV"), "rb").read()
        self.assertEqual(len(os.listdir(self.cache)), 1)
        os.kill(pid, signal.SIGTERM)
        self.wait_unmounted(pid)
        self.assertEqual(os.listdir(self.cache), [])

    def test_foreground_exit_code_on_sigterm(self):
        p = subprocess.Popen([harness.BINARY, "demo", self.dir, "--foreground", "-o", self.opts()],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not harness.is_mounted(self.dir) and time.time() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(20), 0)
        self.assertFalse(harness.is_mounted(self.dir))

    def test_killed_daemon_recovery(self):
        self.mock.synthetic("k.WAV", 3 << 20)
        r = self.helper("demo", self.dir, "-o", self.opts("mem_cache_size=1M"))
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = harness.daemon_pid(self.dir)
        open(os.path.join(self.dir, "k.WAV"), "rb").read()
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)
        with self.assertRaises(OSError) as ctx:
            os.stat(self.dir)
        self.assertEqual(ctx.exception.errno, errno.ENOTCONN)
        self.assertEqual(len(os.listdir(self.cache)), 1)  # left behind by the crash
        r = self.helper("demo", self.dir, "-o", self.opts())
        self.assertEqual(r.returncode, 32)
        self.assertIn("fusermount3 -uz " + self.dir, r.stderr)
        subprocess.run(["fusermount3", "-uz", self.dir], check=True)
        r = self.helper("demo", self.dir, "-o", self.opts())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(self.cache), [])  # purged at start
        self.assertEqual(os.stat(os.path.join(self.dir, "k.WAV")).st_size, 3 << 20)

    def test_key_never_in_cmdline_environ_or_logs(self):
        self.mock.synthetic("log.WAV", 100)
        self.mock.fault("bad.WAV", "error:Authorization Failed")
        with syslog_capture() as lines:
            r = self.helper("demo", self.dir, "-o", self.opts())
            self.assertEqual(r.returncode, 0, r.stderr)
            pid = harness.daemon_pid(self.dir)
            os.stat(os.path.join(self.dir, "log.WAV"))
            for name in ("bad.WAV", "missing.WAV"):
                try:
                    os.stat(os.path.join(self.dir, name))
                except OSError:
                    pass
            for path in ("cmdline", "environ"):
                with open("/proc/%d/%s" % (pid, path), "rb") as f:
                    self.assertNotIn(harness.KEY.encode(), f.read())
            subprocess.run(["umount", self.dir], check=True)
            self.wait_unmounted(pid)
            time.sleep(0.3)
        log = "\n".join(lines)
        self.assertIn("mount.euphoria", log)
        self.assertRegex(log, r"fetched log\.WAV: 100 bytes in \d+ ms, ok")
        self.assertIn("bad.WAV", log)
        self.assertIn("Authorization Failed", log)
        self.assertNotIn(harness.KEY, log)
        # err level (3) for the failure: syslog priority <facility*8+3>, daemon facility 3.
        self.assertIn("<27>", "".join(l[:5] for l in lines if "bad.WAV" in l))

    def test_help_and_version(self):
        r = self.helper("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("credentials", r.stdout)
        r = self.helper("-V")
        self.assertEqual(r.returncode, 0)
        self.assertIn("euphoriafs", r.stdout)


if __name__ == "__main__":
    harness.main()

#!/usr/bin/env python3
"""rediss://: a fleet's Redis over TLS. A build whose hiredis has TLS (Debian 13's 1.x
ships libhiredis_ssl) talks TLS and checks the server's certificate and address; one
whose hiredis has none (Debian 12's 0.14) refuses rediss:// at mount, saying why,
rather than talking in clear. Which build this is comes from the system, not from the
binary: hiredis_ssl's pkg-config file, which the build looks for too."""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402


def hiredis_has_tls():
    return subprocess.run(["pkg-config", "--exists", "hiredis_ssl"]).returncode == 0


class FleetTlsTest(harness.RedisTestCase):

    @classmethod
    def setUpClass(cls):
        harness.require(shutil.which("pkg-config") is not None, "needs pkg-config")
        super().setUpClass()

    def start_redis(self, bind="127.0.0.1"):
        # The mock's own certificate (IP:127.0.0.1, DNS:localhost), whose CA every
        # mount already trusts through cafile=.
        self.redis = harness.Redis(tls=(os.path.join(self.mock.state, "server.pem"),
                                        os.path.join(self.mock.state, "server.key"),
                                        self.mock.ca), bind=bind)

    def test_rediss_takes_leases_over_tls_or_is_refused_with_the_reason(self):
        self.mock.synthetic("tls-1.WAV", 200_000)
        self.start_redis()
        if not hiredis_has_tls():
            workdir = self.make_workdir()
            r = subprocess.run(self.refused_argv(workdir, self.redis.url), capture_output=True,
                               text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("rediss:// (TLS) is refused", r.stderr)
            self.assertIn("no TLS for Redis", r.stderr)
            self.assertFalse(harness.is_mounted(os.path.join(workdir, "mnt")))
            self.assertEqual(self.mock.calls("tls-1.WAV"), 0)
            return
        m = self.mount("redis=" + self.redis.url, "nolisting")
        wait_until(lambda: m.counter("redis_connected") == 1, 10, "the mount to reach Redis over TLS")
        with open(m.path("tls-1.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("tls-1.WAV"))
        self.assertEqual(self.mock.calls("tls-1.WAV"), 1)
        self.assertEqual(m.counter("redis_fallback_calls"), 0)
        # The lease went through this Redis: its keys carry the tenant's hash tag.
        keys = self.redis.dump()
        self.assertTrue(any("{%s}" % harness.TENANT in k for k in keys), keys)

    def test_a_redis_whose_certificate_does_not_name_it_is_not_used(self):
        self.mock.synthetic("tls-2.WAV", 100_000)
        # 127.0.0.2 reaches the same server, but its certificate names 127.0.0.1 and
        # localhost only: a TLS build must refuse to talk (and work on its fallback
        # share); a build without TLS refuses rediss:// outright.
        self.start_redis(bind="127.0.0.1 127.0.0.2")
        url = self.redis.url.replace("127.0.0.1", "127.0.0.2")
        if not hiredis_has_tls():
            workdir = self.make_workdir()
            r = subprocess.run(self.refused_argv(workdir, url), capture_output=True, text=True,
                               timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("no TLS for Redis", r.stderr)
            return
        m = self.mount("redis=" + url, "nolisting", foreground=True)
        with open(m.path("tls-2.WAV"), "rb") as f:
            self.assertEqual(f.read(), self.mock.raw("tls-2.WAV"))
        self.assertEqual(m.counter("redis_connected"), 0)
        self.assertEqual(m.counter("redis_fallback_calls"), 1)
        self.assertEqual(self.redis.dump(), {})
        with open(m.log) as f:
            log = f.read()
        self.assertIn("is unreachable (Redis TLS with rediss://127.0.0.2", log)
        self.assertIn("IP address mismatch", log)

    def make_workdir(self):
        workdir = tempfile.mkdtemp(prefix="euphoria-e2e-")
        self.addCleanup(shutil.rmtree, workdir, True)
        os.makedirs(os.path.join(workdir, "mnt"))
        return workdir

    def refused_argv(self, workdir, url):
        cred = harness.write_credentials(workdir)
        opts = ["credentials=" + cred, "endpoint=" + self.mock.endpoint, "cafile=" + self.mock.ca,
                "cache_dir=" + os.path.join(workdir, "cache"), "redis=" + url]
        return [harness.BINARY, harness.TENANT, os.path.join(workdir, "mnt"), "-o", ",".join(opts)]


if __name__ == "__main__":
    harness.main()

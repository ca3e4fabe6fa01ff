"""End-to-end harness: the real mount.euphoria binary on a real FUSE mount, against
the mock Euphoria API over real TLS on 127.0.0.1.

Tests never skip silently in CI: when CI=true, a missing prerequisite is a failure.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "..", "mock", "euphoria_mock.py")
BINARY = os.environ.get("EUPHORIA_BIN", "")
# Set by CMake for ASan/TSan builds, whose memory figures are not the product's.
SANITIZED = os.environ.get("EUPHORIA_SANITIZED") == "1"
TENANT = "demo"
KEY = "demo-key-123"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def require(condition, why):
    """Skip outside CI, fail inside it: CI must never pass on a skipped e2e test."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        raise AssertionError("e2e prerequisite missing in CI: " + why)
    raise unittest.SkipTest(why)


def check_prerequisites():
    require(bool(BINARY) and os.access(BINARY, os.X_OK), "EUPHORIA_BIN is not an executable")
    require(os.geteuid() == 0, "needs root for FUSE mounts")
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse")
    require(shutil.which("fusermount3") is not None, "needs fusermount3 (apt-get install fuse3)")


class Mock:
    """The mock API process and its control port. `state_dir` (default: a new temporary
    folder) must not hold a ports.json yet; `stderr` is the mock's stderr (default:
    ours); close() removes the state folder, stop() does not."""

    # The interpreter that runs the mock, and the seconds one control request may take:
    # the benchmark prefers Debian's python3 and needs longer for its large recordings.
    python = sys.executable
    control_timeout = 120

    def __init__(self, extra_args=(), state_dir=None, stderr=None):
        self.args = list(extra_args)
        self.state = state_dir or tempfile.mkdtemp(prefix="euphoria-mock-")
        self.stderr = stderr
        self.proc = subprocess.Popen(
            [self.python, MOCK, "--state-dir", self.state, *extra_args],
            stdout=subprocess.DEVNULL, stderr=stderr)
        ports = os.path.join(self.state, "ports.json")
        deadline = time.time() + 30
        while not os.path.exists(ports):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the mock API did not start")
            time.sleep(0.02)
        with open(ports) as f:
            p = json.load(f)
        self.api_port, self.control_port = p["api"], p["control"]
        self.ca = os.path.join(self.state, "ca.pem")
        self.endpoint = "https://127.0.0.1:%d/Euphoria.Api.aspx" % self.api_port

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        if data is None and method != "GET":
            data = b"{}"
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.control_port, path), data=data, method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.control_timeout) as r:
            raw = r.read()
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def stats(self):
        return self.control("GET", "/stats")

    def calls(self, name):
        return self.stats()["calls"].get(name, 0)

    def reset(self):
        self.control("POST", "/reset")

    def fault(self, name, kind, times=-1):
        self.control("POST", "/fault", {"tenant": TENANT, "name": name, "fault": kind, "times": times})

    def clear_faults(self):
        self.control("POST", "/fault/clear")

    def hold(self, slots, seconds, tenant=TENANT):
        """A foreign client (the PBX portal) holds `slots` of the tenant's call slots."""
        return self.control("POST", "/hold", {"tenant": tenant, "slots": slots, "seconds": seconds})

    def clear_holds(self):
        self.control("POST", "/hold/clear")

    def config(self, **kw):
        self.control("POST", "/config", kw)

    def add(self, name, data):
        import base64
        self.control("POST", "/recording", {"tenant": TENANT, "name": name,
                                            "data_b64": base64.b64encode(data).decode()})

    def add_recordings(self, recordings, checksums=True):
        """Many recordings at once: dicts as for POST /recording (tenant added)."""
        return self.control("POST", "/recordings", {"tenant": TENANT, "recordings": recordings,
                                                    "checksums": checksums})

    def synthetic(self, name, size):
        return self.control("POST", "/recording", {"tenant": TENANT, "name": name, "size": size})

    def raw(self, name):
        import urllib.parse
        req = urllib.request.Request("http://127.0.0.1:%d/recording?tenant=%s&name=%s" % (
            self.control_port, TENANT, urllib.parse.quote(name, safe="")))
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read()

    def raw_to_file(self, name, path):
        """The recording's bytes, streamed into `path` (for those too large for raw())."""
        import urllib.parse
        url = "http://127.0.0.1:%d/recording?tenant=%s&name=%s" % (
            self.control_port, TENANT, urllib.parse.quote(name, safe=""))
        with urllib.request.urlopen(url, timeout=self.control_timeout) as r, \
                open(path, "wb") as out:
            shutil.copyfileobj(r, out, 1 << 20)

    def restart(self, down_seconds=None, up=False):
        """Stops the API (an outage), or with up=True brings it back on the same ports."""
        if not up:
            self.stop()
            return
        self.proc = subprocess.Popen(
            [self.python, MOCK, "--state-dir", self.state, "--port", str(self.api_port),
             "--control-port", str(self.control_port), *self.args], stdout=subprocess.DEVNULL,
            stderr=self.stderr)
        deadline = time.time() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the mock API did not come back")
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)


def errno_of(fn, *args):
    """The errno that fn(*args) fails with, 0 if it succeeds."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def interrupt(proc, timeout=5):
    """Sends SIGINT (Ctrl-C) to proc; returns how long it took to exit, or raises
    AssertionError if it is still running after timeout seconds."""
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("Ctrl-C: still running after %g s" % timeout)
    return time.monotonic() - start


def process_exited(pid):
    """True once `pid` has exited: gone, or a zombie. A daemon's parent is the
    machine's PID 1, which may reap zombies late, so /proc/PID can outlive the exit."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_until(condition, timeout, what, interval=0.02):
    """Polls condition() until it is true, for at most timeout seconds; returns its
    last value, or raises AssertionError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(interval)


def write_credentials(directory, key=KEY, mode=0o600, tenant=None):
    path = os.path.join(directory, "demo.cred")
    with open(path, "w") as f:
        f.write("# test credentials\n")
        if tenant:
            f.write("tenant=%s\n" % tenant)
        f.write("auth=%s\n" % key)
    os.chmod(path, mode)
    return path


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def users_of(path):
    """The processes that hold a file, a cwd or a mapping under `path`, as "pid (comm)"
    strings, leaving out the daemon that serves it."""
    path = os.path.realpath(path)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = []
        try:
            links = [os.readlink("/proc/%s/cwd" % pid)]
            for fd in os.listdir("/proc/%s/fd" % pid):
                try:
                    links.append(os.readlink("/proc/%s/fd/%s" % (pid, fd)))
                except OSError:
                    pass  # closed meanwhile, such as listdir's own
            with open("/proc/%s/maps" % pid) as f:
                links += [line.split(None, 5)[-1].strip() for line in f]
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm != "mount.euphoria" and any(l == path or l.startswith(path + "/") for l in links):
            found.append("%s (%s)" % (pid, comm))
    return found


def unmount_when_unused(path, timeout=10):
    """fusermount3 -u, retried while the mount is busy: a process of the test that has
    just been killed may still be closing its files. Raises AssertionError naming the
    processes that still use the mount after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True, timeout=30)
        if r.returncode == 0 or not is_mounted(path):
            return
        if time.monotonic() > deadline:
            raise AssertionError("cannot unmount %s: %s; in use by %s"
                                 % (path, r.stderr.strip(), ", ".join(users_of(path)) or "no process"))
        time.sleep(0.1)


def daemon_pid(mountpoint):
    """The mount.euphoria process serving `mountpoint`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"mount.euphoria") and mountpoint.encode() in argv:
            return int(pid)
    return None


def rss_peak_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads, living and dead)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Mount:
    """One mount of the real binary (`binary`, default EUPHORIA_BIN). Options are added
    to -o."""

    def __init__(self, mock, options=(), workdir=None, foreground=False, extra_args=(), env=None,
                 binary=None):
        self.mock = mock
        self.workdir = workdir or tempfile.mkdtemp(prefix="euphoria-e2e-")
        self.dir = os.path.join(self.workdir, "mnt")
        self.cache_dir = os.path.join(self.workdir, "cache")
        os.makedirs(self.dir, exist_ok=True)
        self.cred = write_credentials(self.workdir)
        for o in options:
            if o.startswith("cache_dir="):
                self.cache_dir = o.split("=", 1)[1]
        opts = ["credentials=" + self.cred, "endpoint=" + mock.endpoint, "cafile=" + mock.ca,
                *(["cache_dir=" + self.cache_dir] if not any(o.startswith("cache_dir=") for o in options) else []),
                *options]
        self.argv = [binary or BINARY, TENANT, self.dir, "-o", ",".join(opts), *extra_args]
        self.log = os.path.join(self.workdir, "daemon.log")
        self.proc = None
        if foreground:
            self.proc = subprocess.Popen(self.argv + ["--foreground"], stdout=subprocess.DEVNULL,
                                         stderr=open(self.log, "w"), env=env)
            deadline = time.time() + 20
            while not is_mounted(self.dir):
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mount failed: " + open(self.log).read())
                time.sleep(0.02)
        else:
            r = subprocess.run(self.argv, capture_output=True, text=True, timeout=60, env=env)
            if r.returncode != 0:
                raise RuntimeError("mount failed (%d): %s" % (r.returncode, r.stderr))
        self.pid = daemon_pid(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def counter(self, name):
        """One of the root's counters (user.euphoria.NAME), as an int."""
        return int(os.getxattr(self.dir, "user.euphoria." + name))

    def cpu(self):
        """CPU seconds (user + system) the daemon has used so far."""
        return cpu_seconds(self.pid)

    def cache_file(self):
        """/proc path of a disk-cache file the daemon holds open (the disk tier), or None."""
        fds = "/proc/%d/fd" % self.pid
        for fd in os.listdir(fds):
            try:
                target = os.readlink(os.path.join(fds, fd))
            except OSError:
                continue
            if target.startswith(self.cache_dir + "/"):
                return os.path.join(fds, fd)
        return None

    def unmount(self):
        if is_mounted(self.dir):
            unmount_when_unused(self.dir)
        deadline = time.time() + 20
        while self.pid and os.path.exists("/proc/%d" % self.pid) and time.time() < deadline:
            if self.proc:
                self.proc.poll()
            time.sleep(0.05)
        if self.proc:
            self.proc.wait(10)

    def close(self):
        try:
            self.unmount()
        finally:
            if is_mounted(self.dir):
                subprocess.run(["fusermount3", "-uz", self.dir], check=False)
            shutil.rmtree(self.workdir, ignore_errors=True)


NOBODY = pwd.getpwnam("nobody")


def as_nobody(*argv):
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY.pw_uid, "--regid=%d" % NOBODY.pw_gid,
                        "--clear-groups", *argv], capture_output=True, timeout=30)
    r.stderr = r.stderr.decode(errors="replace")
    return r


class UserMount:
    """A mount made by an ordinary user (nobody) through fusermount3, as a user's own
    fstab "user" line would: the daemon has no capabilities."""

    def __init__(self, mock, options=()):
        self.workdir = tempfile.mkdtemp(prefix="euphoria-user-")
        # Debian's udev rule makes /dev/fuse 0666 so that users can mount through
        # fusermount3; a bare container may not have applied it.
        self.fuse_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        os.chmod("/dev/fuse", 0o666)
        os.chmod(self.workdir, 0o755)
        self.dir = os.path.join(self.workdir, "mnt")
        os.makedirs(self.dir)
        cred = write_credentials(self.workdir)
        ca = os.path.join(self.workdir, "ca.pem")
        shutil.copy(mock.ca, ca)
        for p in (self.dir, cred, ca, self.workdir):
            os.chown(p, NOBODY.pw_uid, NOBODY.pw_gid)
        opts = ["credentials=" + cred, "endpoint=" + mock.endpoint, "cafile=" + ca,
                "cache_dir=" + os.path.join(self.workdir, "cache"), *options]
        self.result = as_nobody(BINARY, TENANT, self.dir, "-o", ",".join(opts))
        self.pid = daemon_pid(self.dir) if self.result.returncode == 0 else None

    def path(self, name):
        return os.path.join(self.dir, name)

    def unmount(self):
        r = as_nobody("fusermount3", "-u", self.dir)
        deadline = time.time() + 10
        while self.pid and os.path.exists("/proc/%d" % self.pid) and time.time() < deadline:
            time.sleep(0.05)
        return r

    def close(self):
        try:
            if is_mounted(self.dir):
                self.unmount()
        finally:
            os.chmod("/dev/fuse", self.fuse_mode)
            subprocess.run(["fusermount3", "-uz", self.dir], capture_output=True)
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- a fleet's Redis (issue 12) ---------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on 127.0.0.1, no persistence; kill() is an outage, start() ends it
    on the same port."""

    def __init__(self, tls=None, bind="127.0.0.1"):
        """tls: (cert, key, ca) files, for a server that speaks TLS only (rediss://);
        bind: the addresses it listens on, space-separated."""
        self.port = free_port()
        self.bind = bind
        self.dir = tempfile.mkdtemp(prefix="euphoria-redis-")
        self.tls = tls
        self.proc = None
        self.start()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("rediss" if self.tls else "redis", self.port)

    def start(self):
        if self.tls:
            cert, key, ca = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                      "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        else:
            listen = ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), *listen, "--bind", *self.bind.split(),
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL)
        wait_until(self.answers, 30, "redis-server to answer")

    def answers(self):
        try:
            return self.command("PING") == "+PONG"
        except OSError:
            return False

    def command(self, *args):
        """One command, RESP by hand: enough for PING and counters."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if self.tls:
            s = ssl.create_default_context(cafile=self.tls[2]).wrap_socket(
                s, server_hostname="127.0.0.1")
        with s:
            req = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)
            s.sendall(req.encode())
            return s.recv(65536).decode(errors="replace").split("\r\n")[0]

    def dump(self):
        """{key: its whole value as text}, for every key (redis-cli, from redis-tools)."""
        def cli(*args):
            tls = ["--tls", "--cacert", self.tls[2]] if self.tls else []
            return subprocess.run(["redis-cli", "-p", str(self.port), *tls, *args], capture_output=True,
                                  text=True, errors="replace", check=True, timeout=30).stdout
        out = {}
        for key in cli("--scan").split():
            kind = cli("TYPE", key).strip()
            value = {"zset": ("ZRANGE", key, "0", "-1", "WITHSCORES"), "hash": ("HGETALL", key),
                     "string": ("GET", key), "set": ("SMEMBERS", key),
                     "list": ("LRANGE", key, "0", "-1")}.get(kind)
            out[key] = "(%s) %s" % (kind, cli(*value) if value else "?")
        return out

    def dump_bytes(self):
        """{key: its value as bytes}: strings exactly as Redis holds them (GET, never
        DUMP, which may compress), other types as redis-cli prints them."""
        def cli(*args):
            tls = ["--tls", "--cacert", self.tls[2]] if self.tls else []
            return subprocess.run(["redis-cli", "-p", str(self.port), *tls, *args],
                                  capture_output=True, check=True, timeout=30).stdout
        out = {}
        for key in cli("--scan").decode().split():
            kind = cli("TYPE", key).decode().strip()
            value = {"zset": ("ZRANGE", key, "0", "-1", "WITHSCORES"), "hash": ("HGETALL", key),
                     "string": ("GET", key), "set": ("SMEMBERS", key),
                     "list": ("LRANGE", key, "0", "-1")}.get(kind)
            out[key] = cli(*value) if value else b""
        return out

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class E2ETestCase(unittest.TestCase):
    """One mock per test class; each test makes the mounts it needs."""

    mock_args = ()

    @classmethod
    def setUpClass(cls):
        check_prerequisites()
        cls.mock = Mock(cls.mock_args)

    @classmethod
    def tearDownClass(cls):
        cls.mock.close()

    def setUp(self):
        self.mock.clear_faults()
        self.mock.clear_holds()
        self.mock.config(latency=0)
        self.mock.config(name_latency={}, pace=0)
        self.mock.reset()
        self.mounts = []

    def tearDown(self):
        for m in self.mounts:
            m.close()

    def mount(self, *options, **kw):
        m = Mount(self.mock, options, **kw)
        self.mounts.append(m)
        # The mount's start-up probe is one call: tests count from here.
        self.mock.reset()
        return m



class RedisTestCase(E2ETestCase):
    """Mounts beside a redis-server of the test's own (self.redis, set by setUp);
    daemons still alive after the unmount are killed, then Redis is stopped."""

    @classmethod
    def setUpClass(cls):
        require(shutil.which("redis-server") is not None,
                "needs redis-server (apt-get install redis-server)")
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.redis = None

    def tearDown(self):
        try:
            super().tearDown()
            for m in self.mounts:
                if m.pid and os.path.exists("/proc/%d" % m.pid):
                    os.kill(m.pid, signal.SIGKILL)
        finally:
            if self.redis:
                self.redis.close()

def main():
    """Run the calling module's tests; a skipped test fails the run in CI."""
    result = unittest.main(module="__main__", exit=False, verbosity=2).result
    skipped = len(result.skipped)
    ok = result.wasSuccessful() and not (skipped and os.environ.get("CI") == "true")
    if skipped and os.environ.get("CI") == "true":
        print("FAIL: %d test(s) skipped in CI" % skipped)
    sys.exit(0 if ok else 1)

#!/usr/bin/env python3
"""The Debian package and the install tree.

Builds the .deb with `cpack -G DEB` (into a temporary folder: the build tree is left
as it was), then checks its files and modes (dpkg-deb -c), its control fields
(dpkg-deb -f), its Depends against the package names of this Debian release and the
packages that hold the libraries the binary links, conffiles and postrm (dpkg-deb -I),
that the packaged helper runs, and that lintian reports no error.

Then, as root, installs it with apt-get, checks the installed files, fakes the disk
cache a root mount leaves in /var/cache/euphoria (nothing is mounted), removes and
purges it, and checks that nothing of it is left; whatever happens, the machine ends
as it was (the package purged, the folders it made gone). It refuses to run where
euphoriafs is installed already, or /etc/euphoria or /var/cache/euphoria exist.

Then runs `cmake --install` twice: with --prefix TMP (the tree under TMP) and with
DESTDIR=TMP --prefix /usr, which with the component "debian" (copyright, changelog)
must give exactly the .deb's tree. Last, the RPM spec: its Version and %files, and
`rpmspec -P` when rpm is installed.
"""

import contextlib
import fcntl
import gzip
import os
import re
import shutil
import stat
import tempfile
import time

from docs_common import (IN_CI, SKIP_EXIT, SOURCE_DIR, Checks, env_path, optional_tool, read,
                         require_tool, run)

VERSION = env_path("EUPHORIA_VERSION")
BUILD_DIR = env_path("EUPHORIA_BUILD_DIR")
MAN_SOURCE = os.path.join(SOURCE_DIR, "man", "mount.euphoria.8")
SPEC = os.path.join(SOURCE_DIR, "packaging", "euphoriafs.spec")
MAINTAINER = "euphoriafs developers <dev@euphoriafs.invalid>"

# Runtime packages the .deb must depend on (by name; versions may be added).
REQUIRED_DEPENDS = {
    "fuse3": r"fuse3",
    "ca-certificates": r"ca-certificates",
    "libfuse3": r"libfuse3-\d+",
    "libcurl": r"libcurl4(t64)?",
    "libxml2": r"libxml2(-\d+)?",
    "boost program_options": r"libboost-program-options\d[\d.]*(t64)?",
}
# The library packages by name on each Debian release (/etc/os-release VERSION_ID).
# Debian 13 renamed libfuse3-3 and libcurl4 (64-bit time_t), and has Boost 1.83.
RELEASE_DEPENDS = {
    "12": ["libfuse3-3", "libcurl4", "libxml2", "libboost-program-options1.74.0",
           "libstdc++6", "libgcc-s1", "libc6"],
    "13": ["libfuse3-4", "libcurl4t64", "libxml2", "libboost-program-options1.83.0",
           "libstdc++6", "libgcc-s1", "libc6"],
}
# Files only the .deb has (install component "debian"), which Debian asks of every package.
DEB_ONLY = ["usr/share/doc/euphoriafs/copyright", "usr/share/doc/euphoriafs/changelog.Debian.gz"]
# What the package and a root mount put on the machine.
HELPER = "/usr/sbin/mount.euphoria"
CONF_DIR = "/etc/euphoria"
CACHE_DIR = "/var/cache/euphoria"
# lintian warnings packaging/README.md explains; any other is printed as a NOTE.
KNOWN_WARNINGS = {"initial-upload-closes-no-bugs", "non-standard-file-perm"}


def os_release():
    fields = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                m = re.match(r'^([A-Z_]+)=("?)(.*)\2$', line.strip())
                if m:
                    fields[m.group(1)] = m.group(3)
    except OSError:
        pass
    return fields


def release_depends():
    """This Debian release's library package names, or None for a release not listed."""
    fields = os_release()
    if fields.get("ID") != "debian":
        return None
    version = fields.get("VERSION_ID") or {"bookworm": "12", "trixie": "13"}.get(
        fields.get("VERSION_CODENAME", ""), "")
    return RELEASE_DEPENDS.get(version)


def package_of(path):
    """The Debian package that holds a file, trying /lib and /usr/lib (merged /usr)."""
    real = os.path.realpath(path)
    candidates = [real]
    if real.startswith("/usr/lib"):
        candidates.append(real[len("/usr"):])
    elif real.startswith("/lib"):
        candidates.append("/usr" + real)
    for candidate in candidates:
        r = run(["dpkg-query", "-S", candidate])
        m = re.match(r"^([a-z0-9][a-z0-9+.-]+)(:[a-z0-9-]+)?: ", r.stdout)
        if r.returncode == 0 and m:
            return m.group(1)
    return None


def linked_packages(binary):
    """{soname: package} of the libraries the binary itself needs (DT_NEEDED)."""
    readelf = optional_tool("readelf", "binutils")
    if not readelf:
        return {}
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run([readelf, "-d", binary]).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", binary]).stdout, re.M))
    return {name: package_of(paths[name]) if name in paths else None for name in needed}


def docs_expected():
    docs = ["README.md"] + (["SECURITY.md"] if os.path.exists(os.path.join(SOURCE_DIR, "SECURITY.md")) else [])
    return ["share/doc/euphoriafs/" + d for d in docs]


def deb_listing(dpkg_deb, deb):
    """{path without ./ : (mode string, owner)} of the package's data."""
    r = run([dpkg_deb, "-c", deb])
    if r.returncode != 0:
        raise SystemExit("FAIL: dpkg-deb -c: " + r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        path = fields[5].split(" -> ")[0]
        path = path[2:] if path.startswith("./") else path
        path = path.rstrip("/")
        if path:
            out[path] = (fields[0], fields[1])
    return out


def tree_listing(root):
    """{relative path: mode string} of an installed tree, in dpkg-deb -c's notation."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            rel = os.path.relpath(full, root)
            out[rel] = stat.filemode(os.lstat(full).st_mode)
    return out


def check_deb(c, tmp, cpack, dpkg_deb):
    outdir = os.path.join(tmp, "deb")
    os.makedirs(outdir)
    config = os.path.join(BUILD_DIR, "CPackConfig.cmake")
    if not c.check(os.path.exists(config), "no %s: configure the build first" % config):
        return None, None
    r = run([cpack, "-G", "DEB", "--config", config, "-B", outdir], cwd=BUILD_DIR, timeout=300)
    if not c.check(r.returncode == 0, "cpack -G DEB failed:\n" + r.stdout + r.stderr):
        return None, None
    # CPackConfig.cmake must read back what packaging/CMakeLists.txt set.
    c.check("Invalid escape sequence" not in r.stdout + r.stderr and "CPackConfig.cmake:" not in r.stdout + r.stderr,
            "cpack warns about CPackConfig.cmake:\n" + r.stdout + r.stderr)
    debs = [f for f in os.listdir(outdir) if f.endswith(".deb")]
    if not c.check(len(debs) == 1, "expected one .deb, cpack made %r" % debs):
        return None, None
    c.check(re.fullmatch(r"euphoriafs_%s-\d+_[a-z0-9]+\.deb" % re.escape(VERSION), debs[0]) is not None,
            "package file name %s is not euphoriafs_%s-RELEASE_ARCH.deb" % (debs[0], VERSION))
    deb = os.path.join(outdir, debs[0])

    files = deb_listing(dpkg_deb, deb)
    helper = files.get("usr/sbin/mount.euphoria")
    if c.check(helper is not None, "the .deb lacks ./usr/sbin/mount.euphoria"):
        c.check(helper[0] == "-rwxr-xr-x" and helper[1] == "root/root",
                "./usr/sbin/mount.euphoria is %s %s, want -rwxr-xr-x root/root" % helper)
    c.check("usr/share/man/man8/mount.euphoria.8.gz" in files,
            "the .deb lacks ./usr/share/man/man8/mount.euphoria.8.gz")
    cred = files.get("etc/euphoria/example.cred")
    if c.check(cred is not None, "the .deb lacks ./etc/euphoria/example.cred"):
        c.check(cred == ("-rw-------", "root/root"),
                "./etc/euphoria/example.cred is %s %s, want -rw------- root/root" % cred)
    for doc in docs_expected():
        c.check("usr/" + doc in files, "the .deb lacks ./usr/" + doc)
    for path, (mode, owner) in files.items():
        c.check(owner == "root/root", "%s in the .deb belongs to %s" % (path, owner))
        if mode.startswith("d"):
            c.check(mode == "drwxr-xr-x", "folder %s in the .deb is %s" % (path, mode))

    # Control fields.
    fields = {}
    for name in ["Package", "Version", "Architecture", "Maintainer", "Section", "Priority",
                 "Depends", "Description"]:
        r = run([dpkg_deb, "-f", deb, name])
        fields[name] = r.stdout.strip()
    c.check(fields["Package"] == "euphoriafs", "Package: %r" % fields["Package"])
    c.check(fields["Version"].startswith(VERSION + "-"),
            "Version: %r does not start with %s-" % (fields["Version"], VERSION))
    c.check(fields["Maintainer"] == MAINTAINER, "Maintainer: %r" % fields["Maintainer"])
    c.check(fields["Section"] == "admin", "Section: %r" % fields["Section"])
    c.check(fields["Priority"] == "optional", "Priority: %r" % fields["Priority"])
    c.check(len(fields["Description"].splitlines()) >= 2, "Description has no long text")
    depends = {re.split(r"[\s(]", alt.strip())[0]
               for group in fields["Depends"].split(",") for alt in group.split("|") if alt.strip()}
    for what, pattern in REQUIRED_DEPENDS.items():
        c.check(any(re.fullmatch(pattern, d) for d in depends),
                "Depends lacks %s (%s): %r" % (what, pattern, fields["Depends"]))
    # The names this release gives those libraries, and the packages that really hold
    # the libraries the built binary links: a .deb built here installs here.
    expected = release_depends()
    if expected is None:
        print("NOTE: %s is no release RELEASE_DEPENDS lists: only the linked libraries' "
              "packages are checked" % os_release().get("PRETTY_NAME", "this system"))
    for package in expected or []:
        c.check(package in depends, "Depends lacks %s, the package this release names: %r"
                % (package, fields["Depends"]))
    for soname, package in linked_packages(env_path("EUPHORIA_BIN")).items():
        if c.check(package is not None, "no Debian package holds %s, which the binary links" % soname):
            c.check(package in depends, "Depends lacks %s, which holds the linked %s: %r"
                    % (package, soname, fields["Depends"]))

    # The .deb's own files: copyright (machine-readable) and the changelog of this version.
    for path in DEB_ONLY:
        if c.check(path in files, "the .deb lacks ./" + path):
            c.check(files[path] == ("-rw-r--r--", "root/root"), "./%s is %s %s" % ((path,) + files[path]))

    r = run([dpkg_deb, "-I", deb, "conffiles"])
    conffiles = r.stdout.split()
    c.check("/etc/euphoria/example.cred" in conffiles,
            "conffiles does not list /etc/euphoria/example.cred: %r" % r.stdout)
    for conffile in conffiles:
        c.check(conffile.lstrip("/") in files, "conffile %s is not in the package" % conffile)
    control = os.path.join(tmp, "deb-control")
    r = run([dpkg_deb, "-e", deb, control])
    if c.check(r.returncode == 0, "dpkg-deb -e failed: " + r.stderr):
        postrm = os.path.join(control, "postrm")
        if c.check(os.path.exists(postrm), "the .deb has no postrm (purge must remove the cache)"):
            c.check(stat.filemode(os.stat(postrm).st_mode) == "-rwxr-xr-x", "postrm is not 0755")
            c.check(read(postrm).startswith("#!/bin/sh\n"), "postrm is no /bin/sh script")
            r = run(["sh", "-n", postrm])
            c.check(r.returncode == 0, "sh -n postrm: " + r.stderr)

    # Contents: the man page is the source's, the example key is commented out, and
    # the packaged (stripped) helper runs.
    root = os.path.join(tmp, "deb-root")
    r = run([dpkg_deb, "-x", deb, root])
    if c.check(r.returncode == 0, "dpkg-deb -x failed: " + r.stderr):
        man = os.path.join(root, "usr/share/man/man8/mount.euphoria.8.gz")
        if os.path.exists(man):
            with gzip.open(man, "rb") as f, open(MAN_SOURCE, "rb") as g:
                c.check(f.read() == g.read(), "the packaged man page differs from man/mount.euphoria.8")
        example = os.path.join(root, "etc/euphoria/example.cred")
        if os.path.exists(example):
            text = read(example)
            c.check("#auth=YOUR-KEY-HERE" in text and "#tenant=YOUR-TENANT" in text,
                    "example.cred lacks #auth=YOUR-KEY-HERE / #tenant=YOUR-TENANT")
            active = [l for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
            c.check(not active, "example.cred must only hold comments, has %r" % active)
        changelog = os.path.join(root, DEB_ONLY[1])
        if os.path.exists(changelog):
            with gzip.open(changelog, "rt", encoding="utf-8") as f:
                first = f.readline()
            c.check(first.startswith("euphoriafs (%s) " % fields["Version"]),
                    "changelog.Debian.gz starts %r, not with this version %s" % (first, fields["Version"]))
        copyright_file = os.path.join(root, DEB_ONLY[0])
        if os.path.exists(copyright_file):
            c.check(read(copyright_file).startswith(
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"),
                "the copyright file is not machine-readable (DEP-5)")
        binary = os.path.join(root, "usr/sbin/mount.euphoria")
        if os.path.exists(binary):
            with open(binary, "rb") as f:
                c.check(f.read(4) == b"\x7fELF", "usr/sbin/mount.euphoria is not an ELF file")
            r = run([binary, "--version"])
            c.check(r.returncode == 0 and VERSION in r.stdout,
                    "the packaged mount.euphoria --version: rc=%d %r" % (r.returncode, r.stdout + r.stderr))
    return deb, files


def check_lintian(c, deb):
    """lintian reports no error; the warnings left are printed (packaging/README.md)."""
    lintian = require_tool("lintian", "lintian")
    r = run([lintian, "--fail-on", "error", "--no-tag-display-limit", deb], timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIPXO]: ", l)]
    errors = [l for l in tags if l.startswith("E: ")]
    c.check(not errors and r.returncode == 0,
            "lintian: rc=%d, errors:\n  %s\n%s" % (r.returncode, "\n  ".join(errors), r.stderr.strip()))
    for line in tags:
        if line.startswith("W: "):
            tag = line.split()[2]
            print("NOTE: lintian %s%s" % (line, "" if tag in KNOWN_WARNINGS else
                                          "  (not explained in packaging/README.md)"))


def not_ready(why):
    """The install check cannot run here: a visible skip, a failure in CI."""
    print(("FAIL: " if IN_CI else "SKIP: ") + "the apt install and purge check did not run: " + why)
    return False


def dpkg_status(package):
    """dpkg's two-letter state ("ii", "rc", ...), or "" when dpkg does not know it."""
    r = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package])
    return r.stdout.strip() if r.returncode == 0 else ""


@contextlib.contextmanager
def usr_sbin_lock(timeout):
    """Only one of us at a time puts a mount.euphoria into /usr/sbin: an flock on the
    folder itself, so nothing is left behind. Then waits (up to timeout) until a
    mount.euphoria there that no package owns, such as the link a mount(8) helper
    test makes for a while, is gone."""
    fd = os.open("/usr/sbin", os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("another package test holds /usr/sbin")
                time.sleep(0.5)
        while os.path.lexists(HELPER) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def apt_get(*args, timeout=300):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return run(["apt-get", "-o", "DPkg::Lock::Timeout=120", *args], env=env, timeout=timeout)


def fake_cache(tenant, lock=False):
    """What a root mount of TENANT leaves in its default cache folder, without a mount:
    a 0700 folder of 0600 rec-* files, and the daemon's flock when it still runs."""
    folder = os.path.join(CACHE_DIR, tenant)
    os.makedirs(folder, 0o700)
    for name in ["rec-a1b2c3", "rec-d4e5f6"]:
        fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"recording")
        os.close(fd)
    if not lock:
        return None
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def check_apt(c, tmp, deb, deb_files):
    """apt-get install, the installed files, apt-get remove and purge: nothing is left."""
    if os.geteuid() != 0:
        return not_ready("it needs root")
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        return not_ready("no apt-get or dpkg-query")
    try:
        with usr_sbin_lock(180):
            before = dpkg_status("euphoriafs")
            if before not in ("", "un", "pn"):
                return not_ready("euphoriafs is on this machine (dpkg state %r): the test would "
                                 "replace and purge it; purge it first" % before)
            there = [p for p in (HELPER, CONF_DIR, CACHE_DIR) if os.path.lexists(p)]
            if there:
                return not_ready("%s exist(s) already: the test would remove what is not its own"
                                 % ", ".join(there))
            held = []  # the fds of the cache folder locks the test holds
            try:
                install_remove_purge(c, tmp, deb, deb_files, held)
            finally:
                for fd in held:
                    os.close(fd)
                if dpkg_status("euphoriafs") not in ("", "un", "pn"):
                    apt_get("purge", "-y", "euphoriafs")
                for path in (CACHE_DIR, CONF_DIR):
                    if os.path.lexists(path):
                        shutil.rmtree(path, ignore_errors=True)
                c.check(dpkg_status("euphoriafs") in ("", "un", "pn") and
                        not any(os.path.lexists(p) for p in (HELPER, CONF_DIR, CACHE_DIR)),
                        "the machine is not as it was: euphoriafs %r, left %r" % (
                            dpkg_status("euphoriafs"),
                            [p for p in (HELPER, CONF_DIR, CACHE_DIR) if os.path.lexists(p)]))
    except TimeoutError as e:
        return not_ready(str(e))
    return True


def install_remove_purge(c, tmp, deb, deb_files, held):
    """The round trip; the cache folder locks it takes go into held, for the caller."""
    # apt (user _apt) reads the .deb: the temporary folders are 0700.
    for folder in (tmp, os.path.dirname(deb)):
        os.chmod(folder, 0o755)
    # The test installs the package and nothing else: its dependencies must be there.
    r = apt_get("install", "-s", "--no-install-recommends", deb)
    would = re.findall(r"^Inst (\S+)", r.stdout, re.M)
    if not c.check(r.returncode == 0 and would == ["euphoriafs"],
                   "apt-get install -s %s: rc=%d, would install %r (want only euphoriafs; install "
                   "the missing dependencies first)\n%s" % (deb, r.returncode, would, r.stderr)):
        return
    r = apt_get("install", "-y", "--no-install-recommends", deb)
    if not c.check(r.returncode == 0 and dpkg_status("euphoriafs") == "ii",
                   "apt-get install -y %s: rc=%d\n%s%s" % (deb, r.returncode, r.stdout, r.stderr)):
        return

    # The installed files are the .deb's, with its modes; the helper runs from the
    # real libraries; mount(8) finds it as /sbin/mount.euphoria; man finds the page.
    r = run(["dpkg-query", "-W", "-f=${Version}", "euphoriafs"])
    c.check(r.stdout.startswith(VERSION + "-"), "installed version %r" % r.stdout)
    listed = set(run(["dpkg-query", "-L", "euphoriafs"]).stdout.split())
    for path, (mode, owner) in deb_files.items():
        full = "/" + path
        c.check(full in listed, "dpkg -L euphoriafs lacks " + full)
        if mode.startswith("d") and full not in (CONF_DIR, "/usr/share/doc/euphoriafs"):
            continue  # /etc, /usr/sbin, ... belong to the system
        if c.check(os.path.lexists(full), full + " is not installed"):
            st = os.lstat(full)
            c.check(stat.filemode(st.st_mode) == mode and st.st_uid == 0 and st.st_gid == 0,
                    "%s is %s %d:%d installed, %s %s in the .deb"
                    % (full, stat.filemode(st.st_mode), st.st_uid, st.st_gid, mode, owner))
    r = run([HELPER, "--version"])
    c.check(r.returncode == 0 and VERSION in r.stdout,
            "the installed %s --version: rc=%d %r" % (HELPER, r.returncode, r.stdout + r.stderr))
    c.check(os.path.realpath("/sbin/mount.euphoria") == os.path.realpath(HELPER),
            "/sbin/mount.euphoria is not %s: mount -t euphoria would not find it" % HELPER)
    if shutil.which("man"):
        r = run(["man", "-w", "mount.euphoria"])
        c.check(r.stdout.strip() == "/usr/share/man/man8/mount.euphoria.8.gz",
                "man -w mount.euphoria: %r" % (r.stdout + r.stderr))
    r = run(["dpkg-query", "-W", "-f=${Conffiles}", "euphoriafs"])
    c.check(CONF_DIR + "/example.cred" in r.stdout, "dpkg does not record the conffile: %r" % r.stdout)

    # What root mounts of two tenants leave behind (nothing is mounted): "acme" ended,
    # "busy" still runs and holds its folder's lock.
    fake_cache("acme")
    held.append(fake_cache("busy", lock=True))

    # remove: the binary goes; the conffile and the caches stay (a running mount uses
    # its folder; the daemon runs on from the deleted binary).
    r = apt_get("remove", "-y", "euphoriafs")
    c.check(r.returncode == 0 and dpkg_status("euphoriafs") == "rc",
            "apt-get remove: rc=%d state %r\n%s%s" % (r.returncode, dpkg_status("euphoriafs"), r.stdout, r.stderr))
    c.check(not os.path.lexists(HELPER), "apt-get remove left " + HELPER)
    c.check(os.path.exists(CONF_DIR + "/example.cred"), "apt-get remove removed the conffile")
    c.check(sorted(os.listdir(CACHE_DIR)) == ["acme", "busy"], "apt-get remove touched " + CACHE_DIR)

    # purge: the conffile, /etc/euphoria and the cache go, but for the folder a running
    # mount holds, which is named.
    r = apt_get("purge", "-y", "euphoriafs")
    out = r.stdout + r.stderr
    c.check(r.returncode == 0 and dpkg_status("euphoriafs") in ("", "un", "pn"),
            "apt-get purge: rc=%d state %r\n%s" % (r.returncode, dpkg_status("euphoriafs"), out))
    for path in (HELPER, CONF_DIR, os.path.join(CACHE_DIR, "acme")):
        c.check(not os.path.lexists(path), "apt-get purge left " + path)
    busy = os.path.join(CACHE_DIR, "busy")
    c.check(os.path.isdir(busy) and sorted(os.listdir(busy)) == ["rec-a1b2c3", "rec-d4e5f6"],
            "apt-get purge touched %s, which a running mount holds" % busy)
    c.check("%s is in use by a running mount" % busy in out, "apt-get purge did not name %s:\n%s" % (busy, out))

    # That mount ends (the daemon empties its folder); the package's postrm, run
    # again, then leaves nothing.
    os.close(held.pop())
    for name in os.listdir(busy) if os.path.isdir(busy) else []:
        os.unlink(os.path.join(busy, name))
    r = run(["sh", os.path.join(tmp, "deb-control", "postrm"), "purge"])
    c.check(r.returncode == 0, "postrm purge: rc=%d %s" % (r.returncode, r.stderr))
    c.check(not os.path.lexists(CACHE_DIR), "postrm purge left %s: %r" % (
        CACHE_DIR, os.listdir(CACHE_DIR) if os.path.isdir(CACHE_DIR) else None))


def check_install(c, tmp, cmake, deb_files):
    # cmake --install --prefix DIR: the same tree under DIR, /etc as DIR/etc.
    prefix = os.path.join(tmp, "prefix")
    r = run([cmake, "--install", BUILD_DIR, "--prefix", prefix], timeout=120)
    if c.check(r.returncode == 0, "cmake --install --prefix failed:\n" + r.stdout + r.stderr):
        tree = tree_listing(prefix)
        c.check(tree.get("sbin/mount.euphoria", "").startswith("-rwx"),
                "cmake --install: sbin/mount.euphoria missing or not executable (%r)" % tree.get("sbin/mount.euphoria"))
        c.check("share/man/man8/mount.euphoria.8.gz" in tree,
                "cmake --install: share/man/man8/mount.euphoria.8.gz missing")
        c.check(tree.get("etc/euphoria/example.cred") == "-rw-------",
                "cmake --install: etc/euphoria/example.cred is %r, want -rw-------"
                % tree.get("etc/euphoria/example.cred"))
        for doc in docs_expected():
            c.check(doc in tree, "cmake --install: %s missing" % doc)

    # DESTDIR=DIR cmake --install --prefix /usr: the .deb's tree and modes, but for
    # the .deb's own files, which the component "debian" adds.
    destdir = os.path.join(tmp, "destdir")
    env = dict(os.environ, DESTDIR=destdir)
    r = run([cmake, "--install", BUILD_DIR, "--prefix", "/usr"], timeout=120, env=env)
    ok = c.check(r.returncode == 0, "DESTDIR=... cmake --install --prefix /usr failed:\n" + r.stdout + r.stderr)
    if ok:
        tree = tree_listing(destdir)
        for path in DEB_ONLY:
            c.check(path not in tree, "cmake --install installs %s, which only the .deb has" % path)
        r = run([cmake, "--install", BUILD_DIR, "--prefix", "/usr", "--component", "debian"],
                timeout=120, env=env)
        ok = c.check(r.returncode == 0, "cmake --install --component debian failed:\n" + r.stdout + r.stderr)
    if ok and deb_files is not None:
        tree = tree_listing(destdir)
        deb_tree = {p: m for p, (m, _) in deb_files.items()}
        only_deb = sorted(set(deb_tree) - set(tree))
        only_install = sorted(set(tree) - set(deb_tree))
        c.check(not only_deb and not only_install,
                "cmake --install --prefix /usr and the .deb differ: only in the .deb %r, only "
                "installed %r" % (only_deb, only_install))
        for path in sorted(set(tree) & set(deb_tree)):
            c.check(tree[path] == deb_tree[path],
                    "%s is %s installed but %s in the .deb" % (path, tree[path], deb_tree[path]))


def check_spec(c):
    spec = read(SPEC)
    version = re.search(r"^Version:\s*(\S+)", spec, re.M)
    c.check(version is not None and version.group(1) == VERSION,
            "packaging/euphoriafs.spec Version %r is not the project version %s"
            % (version.group(1) if version else None, VERSION))
    for needle in ["%cmake", "%cmake_build", "%cmake_install", "Requires:       fuse3",
                   "%config(noreplace) %attr(0600,root,root) %{_sysconfdir}/euphoria/example.cred",
                   "%{_sbindir}/mount.euphoria", "%{_mandir}/man8/mount.euphoria.8*"]:
        c.check(needle in spec, "the spec lacks %r" % needle)
    for dep in ["cmake", "gcc-c++", "fuse3-devel", "libcurl-devel", "libxml2-devel", "boost-devel",
                "gsm-devel", "catch-devel"]:
        c.check(re.search(r"^BuildRequires:\s*%s(?!\S)" % re.escape(dep), spec, re.M) is not None,
                "the spec lacks BuildRequires: " + dep)
    rpmspec = optional_tool("rpmspec", "rpm")
    if rpmspec:
        r = run([rpmspec, "-P", SPEC])
        c.check(r.returncode == 0, "rpmspec -P failed: " + r.stderr.strip())
        c.check(re.search(r"^Version:\s*%s$" % re.escape(VERSION), r.stdout, re.M) is not None,
                "rpmspec -P does not show Version: " + VERSION)
        c.check("/etc/euphoria/example.cred" in r.stdout, "rpmspec -P: %files lacks /etc/euphoria/example.cred")


def main():
    cpack = require_tool("cpack", "cmake", os.environ.get("EUPHORIA_CPACK"))
    cmake = require_tool("cmake", "cmake", os.environ.get("EUPHORIA_CMAKE"))
    dpkg_deb = require_tool("dpkg-deb", "dpkg")
    os.umask(0o022)
    c = Checks("test_package")
    skipped = False
    with tempfile.TemporaryDirectory(prefix="euphoria-package-") as tmp:
        deb, files = check_deb(c, tmp, cpack, dpkg_deb)
        if deb is not None:
            check_lintian(c, deb)
            skipped = not check_apt(c, tmp, deb, files)
        check_install(c, tmp, cmake, files)
    check_spec(c)
    if skipped and IN_CI:
        c.check(False, "the apt install and purge check did not run (see above)")
    if skipped and not c.failures:
        print("%s: all %d checks passed, but the apt install and purge check did not run"
              % (c.title, c.passed))
        raise SystemExit(SKIP_EXIT)
    c.finish()


if __name__ == "__main__":
    main()

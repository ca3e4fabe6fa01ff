"""Shared helpers of the docs and package checks (tests/docs/test_*.py).

Run through ctest (registered in packaging/CMakeLists.txt), which sets:
  EUPHORIA_BIN         the built mount.euphoria
  EUPHORIA_SOURCE_DIR  the source tree
  EUPHORIA_BUILD_DIR   the build tree (holds CPackConfig.cmake)
  EUPHORIA_VERSION     project(VERSION)
  EUPHORIA_CPACK, EUPHORIA_CMAKE  the cpack and cmake of the build

A missing tool is a visible skip (exit 77, which ctest reports as skipped) outside CI,
and a failure when CI=true: CI must never pass on a check that did not run.
"""

import os
import shutil
import subprocess
import sys

SKIP_EXIT = 77
IN_CI = os.environ.get("CI") == "true"
HERE = os.path.dirname(os.path.abspath(__file__))


def env_path(name, default=None):
    value = os.environ.get(name) or default
    if not value:
        print("FAIL: %s is not set; run this through ctest (ctest -R docs)" % name)
        sys.exit(1)
    return value


SOURCE_DIR = env_path("EUPHORIA_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))


class Checks:
    """Collects failures, so one run reports every problem, not just the first."""

    def __init__(self, title):
        self.title = title
        self.failures = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print("FAIL: " + what)
        return ok

    def finish(self):
        if self.failures:
            print("%s: %d check(s) failed, %d passed" % (self.title, len(self.failures), self.passed))
            sys.exit(1)
        print("%s: all %d checks passed" % (self.title, self.passed))
        sys.exit(0)


def require_tool(name, package, explicit=None):
    """Path of a tool the test cannot do without: skip outside CI, fail inside it."""
    path = explicit if explicit and os.access(explicit, os.X_OK) else shutil.which(name)
    if path:
        return path
    message = "%s not found (Debian package %s)" % (name, package)
    if IN_CI:
        print("FAIL: %s; CI needs it: add %s to EUPHORIA_DEPS in tests/deps.sh" % (message, package))
        sys.exit(1)
    print("SKIP: " + message)
    sys.exit(SKIP_EXIT)


def optional_tool(name, package):
    """Path of a tool for an extra sub-check, or None (said out loud, never silent)."""
    path = shutil.which(name)
    if not path:
        print("NOTE: %s not found (Debian package %s): that sub-check did not run" % (name, package))
    return path


def run(argv, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(argv, text=True, **kwargs)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()

#!/usr/bin/env python3
"""The layers stay one way down: api < core < fuse < cli. Every #include of a
project header in a layer's sources and headers names its own layer or one below,
the core and the api name no libfuse header, and the core's and api's headers name
no FUSE type. All layers share include/, so this check is what keeps core from
including fuse by accident."""

import os
import re
import sys
import unittest

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORDER = ["api", "core", "fuse", "cli"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
FUSE_HEADER = re.compile(r"^(fuse3?/|fuse_|linux/fuse\.h$|cuse_)")
FUSE_TYPE = re.compile(r"\b(fuse_req_t|fuse_ino_t|fuse_file_info|fuse_session|fuse_conn_info|fuse_entry_param)\b")


def files_of(layer):
    for top in (os.path.join(ROOT, "src", layer), os.path.join(ROOT, "include", "euphoria", layer)):
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if n.endswith((".cpp", ".hpp", ".h")):
                    yield os.path.join(dirpath, n)


def code_of(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # Comments may name anything.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


class LayeringTest(unittest.TestCase):
    def test_every_layer_has_code(self):
        for layer in ORDER:
            self.assertTrue(list(files_of(layer)), layer)

    def test_includes_point_down(self):
        bad = []
        for i, layer in enumerate(ORDER):
            allowed = set(ORDER[: i + 1])
            for path in files_of(layer):
                for inc in INCLUDE.findall(code_of(path)):
                    m = re.match(r"euphoria/(\w+)/", inc)
                    if m and m.group(1) not in allowed:
                        bad.append("%s includes %s" % (os.path.relpath(path, ROOT), inc))
        self.assertEqual(bad, [], "includes that point up a layer")

    def test_core_and_api_know_nothing_of_fuse(self):
        bad = []
        for layer in ("api", "core"):
            for path in files_of(layer):
                code = code_of(path)
                for inc in INCLUDE.findall(code):
                    if FUSE_HEADER.match(inc):
                        bad.append("%s includes %s" % (os.path.relpath(path, ROOT), inc))
                for t in sorted(set(FUSE_TYPE.findall(code))):
                    bad.append("%s uses %s" % (os.path.relpath(path, ROOT), t))
        self.assertEqual(bad, [], "libfuse below the fuse layer")

    def test_the_check_can_fail(self):
        # The patterns themselves, on text that breaks each rule.
        self.assertEqual(INCLUDE.findall('#include "euphoria/fuse/session.hpp"\n'),
                         ["euphoria/fuse/session.hpp"])
        self.assertTrue(FUSE_HEADER.match("fuse3/fuse_lowlevel.h"))
        self.assertTrue(FUSE_TYPE.search("void f(fuse_req_t req);"))


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)

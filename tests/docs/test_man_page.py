#!/usr/bin/env python3
"""The man page against the binary: every option `mount.euphoria --help` lists is in
man/mount.euphoria.8 (long form, and -o underscore form for file system options) with
the default and range --help states; the page renders without a single groff
warning; the API error texts, xattr counters and exit codes of the source are all
documented. `readme` checks that README.md links the man page and shows an fstab line.

Usage: test_man_page.py [man] [readme]   (both when no argument is given)
"""

import os
import re
import sys

from docs_common import SOURCE_DIR, Checks, env_path, optional_tool, read, require_tool, run

MAN_PAGE = os.path.join(SOURCE_DIR, "man", "mount.euphoria.8")
README = os.path.join(SOURCE_DIR, "README.md")

REQUIRED_SECTIONS = [
    "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CREDENTIALS FILE", "FSTAB AND SYSTEMD",
    "START-UP CHECKS", "CACHE", "ERRORS", "COUNTERS", "EXIT STATUS", "FILES", "SECURITY",
    "SEE ALSO",
]

# The fstab line of issue 4 (any amount of white space between fields).
FSTAB_LINE = re.compile(
    r"acmecorp\s+/mnt/rec\s+euphoria\s+credentials=/etc/euphoria/acmecorp\.cred,_netdev,nofail\s+0\s+0")


# --- --help ---------------------------------------------------------------------------

OPTION_LINE = re.compile(r"^  (?:-([A-Za-z]) \[ )?--([a-z][a-z0-9-]*)(?: \])?(?: arg)?(?:\s+(.*))?$")


def parse_help(text):
    """{section title: {long name: (short letter or None, description)}}."""
    sections = {}
    current = None
    last = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith(":"):
            current = sections.setdefault(line.rstrip().rstrip(":"), {})
            last = None
            continue
        if not line.strip():
            current = None  # an option block has no blank line inside
            last = None
            continue
        if current is None:
            continue
        m = OPTION_LINE.match(line)
        if m:
            last = m.group(2)
            current[last] = [m.group(1), (m.group(3) or "").strip()]
        elif last is not None and line.startswith(" " * 10):
            current[last][1] = (current[last][1] + " " + line.strip()).strip()
    return {title: {k: tuple(v) for k, v in opts.items()} for title, opts in sections.items()}


# --- the man page, rendered ---------------------------------------------------------

def render(groff):
    """The page as plain text, one paragraph per line (no hyphenation, no wrapping)."""
    r = run([groff, "-man", "-Tascii", "-rLL=4000n", "-P-c", "-P-b", "-P-u", MAN_PAGE],
            env=dict(os.environ, LC_ALL="C"))
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit("FAIL: groff could not render " + MAN_PAGE)
    return r.stdout


def sections_of(text):
    """{SECTION: [lines]} of rendered text (section titles start in column 0)."""
    out = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.upper() == line and "(" not in line:
            current = out.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    return out


TP_INDENT = 7  # man(7)'s default .TP indent, in ens


def entries_of(lines):
    """Tagged paragraphs (.TP) of a rendered section: [(tag, body)].

    A tag narrower than the indent shares its line with the body ("EIO    text"); a
    wider one has a line of its own, with the body indented below it."""
    out = []
    indent = None
    for line in lines:
        if not line.strip():
            continue
        n = len(line) - len(line.lstrip())
        if indent is None:
            indent = n
        if n <= indent:
            body_at = n + TP_INDENT
            if (len(line) > body_at and line[body_at - 1] == " " and line[body_at] != " "
                    and line[n:body_at].strip()):
                out.append([line[n:body_at].strip(), line[body_at:].strip()])
            else:
                out.append([line.strip(), ""])
        elif out:
            out[-1][1] = (out[-1][1] + " " + line.strip()).strip()
    return [(t, b) for t, b in out]


def squash(s):
    return re.sub(r"\s+", " ", s)


def has_long(text, name):
    return re.search(r"(?<![\w-])--%s(?![\w-])" % re.escape(name), text) is not None


def has_short(text, letter):
    return re.search(r"(?<![\w-])-%s(?![\w-])" % re.escape(letter), text) is not None


def check_man(c):
    binary = env_path("EUPHORIA_BIN")
    version = os.environ.get("EUPHORIA_VERSION", "")
    groff = require_tool("groff", "groff-base")
    man = require_tool("man", "man-db")
    source = read(MAN_PAGE)

    # groff with every warning on: not one line may come out.
    r = run([groff, "-man", "-ww", "-z", MAN_PAGE], env=dict(os.environ, LC_ALL="C"))
    c.check(r.returncode == 0 and not r.stdout and not r.stderr,
            "groff -man -ww -z must print nothing, got rc=%d: %s" % (r.returncode, (r.stdout + r.stderr).strip()))

    # man -l renders it, without warnings.
    r = run([man, "--warnings", "-l", MAN_PAGE],
            env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8"))
    c.check(r.returncode == 0 and "SYNOPSIS" in r.stdout and "mount.euphoria" in r.stdout,
            "man -l %s must render (rc=%d): %s" % (MAN_PAGE, r.returncode, r.stderr.strip()))
    c.check(not r.stderr.strip(), "man -l printed warnings: " + r.stderr.strip())

    mandoc = optional_tool("mandoc", "mandoc")
    if mandoc:
        r = run([mandoc, "-T", "lint", "-W", "warning", MAN_PAGE])
        c.check(r.returncode == 0 and not r.stdout.strip(),
                "mandoc -T lint -W warning: " + (r.stdout + r.stderr).strip())

    text = render(groff)
    flat = squash(text)
    sections = sections_of(text)
    for title in REQUIRED_SECTIONS:
        c.check(title in sections, "the man page has no %s section" % title)

    # Every option of --help, with its default and range.
    r = run([binary, "--help"])
    c.check(r.returncode == 0, "mount.euphoria --help exits %d" % r.returncode)
    helptext = r.stdout
    parsed = parse_help(helptext)
    fs_title = next((t for t in parsed if t.startswith("Options")), None)
    mount_opts = parsed.get(fs_title, {}) if fs_title else {}
    general = parsed.get("General", {})
    # A help layout this parser no longer understands must not pass as "nothing to check".
    if not c.check(len(mount_opts) >= 10 and "credentials" in mount_opts,
                   "could not find the file system options in --help (parser out of date?)"):
        return
    if not c.check(len(general) >= 5 and "help" in general,
                   "could not find the General options in --help (parser out of date?)"):
        return

    options_text = "\n".join(sections.get("OPTIONS", []))
    option_entries = entries_of(sections.get("OPTIONS", []))
    for name, (_, desc) in sorted(mount_opts.items()):
        underscore = name.replace("-", "_")
        c.check(has_long(options_text, name), "--%s (from --help) is not in OPTIONS" % name)
        c.check(re.search(r"-o %s(?![\w-])" % re.escape(underscore), options_text) is not None,
                "-o %s (from --help) is not in OPTIONS" % underscore)
        entry = next((squash(b) for t, b in option_entries if has_long(t, name)), None)
        if not c.check(entry is not None, "--%s has no entry of its own in OPTIONS" % name):
            continue
        rng = re.search(r"\b(\d+) to (\d+)\b", desc)
        if rng:
            c.check("Range %s to %s" % rng.groups() in entry,
                    "--%s: --help says %s to %s, the man page does not say 'Range %s to %s'"
                    % ((name,) + rng.groups() * 2))
        default = re.search(r"\(default:? ([^)]*)\)", desc)
        if default:
            for piece in re.split(r",? or ", default.group(1)):
                piece = piece.strip()
                if piece and " " not in piece:  # prose defaults are not compared
                    c.check(piece in entry, "--%s: default %r of --help is not in its entry" % (name, piece))

    for name, (short, _) in sorted(general.items()):
        c.check(has_long(options_text, name), "--%s (from --help) is not in OPTIONS" % name)
        if short:
            c.check(has_short(options_text, short), "-%s (from --help) is not in OPTIONS" % short)

    # The mount(8) options the helper accepts.
    for opt in ["rw", "ro", "defaults", "_netdev", "nofail", "auto", "noauto", "user", "users",
                "nosuid", "nodev", "noexec", "x-systemd.*", "comment=*"]:
        c.check(re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(opt), options_text) is not None,
                "mount(8) option %s is not in OPTIONS" % opt)

    # Credentials, fstab and systemd, recovery.
    for needle in ["auth=KEY", "key=KEY", "tenant=NAME", "chmod 600", "EUPHORIA_AUTH", "ps(1)"]:
        c.check(needle in flat, "the man page does not mention %r" % needle)
    c.check(FSTAB_LINE.search(flat) is not None, "the man page lacks the fstab line of issue 4")
    for needle in ["x-systemd.automount", "Type=euphoria", "What=acmecorp", "Where=/mnt/rec",
                   "fusermount3 -uz", "fusermount3 -u", "umount", "SIGTERM",
                   "Transport endpoint is not connected", "nocheck", "journalctl"]:
        c.check(needle in flat, "the man page does not mention %r" % needle)

    # The API's error texts, each under the errno the client maps it to.
    error_cpp = read(os.path.join(SOURCE_DIR, "src", "api", "error.cpp"))
    known = re.findall(r'\{"([^"]+)",\s*(E[A-Z]+),\s*ErrorKind::', error_cpp)
    if c.check(len(known) >= 5, "could not read the API error table of src/api/error.cpp"):
        errors = {t: squash(b) for t, b in entries_of(sections.get("ERRORS", []))}
        for text_, errno_name in known:
            c.check(text_ in errors.get(errno_name, ""),
                    "ERRORS: %r is not listed under %s" % (text_, errno_name))
    for errno_name in ["EACCES", "ENOENT", "EAGAIN", "EIO", "EPROTO", "ETIMEDOUT", "EINVAL",
                       "ENOSPC", "EINTR", "EROFS"]:
        c.check(errno_name in {t for t, _ in entries_of(sections.get("ERRORS", []))},
                "ERRORS has no entry for %s" % errno_name)

    # The xattr counters the filesystem serves.
    stats_cpp = read(os.path.join(SOURCE_DIR, "src", "core", "stats.cpp"))
    counters = re.findall(r'\{"([a-z_]+)",\s*[a-z_]+\.load\(\)\}', stats_cpp)
    errno_block = re.search(r"errno_names\[\]\s*=\s*\{([^}]*)\}", stats_cpp)
    if errno_block:
        counters += ["errors_" + n for n in re.findall(r'"([a-z]+)"', errno_block.group(1))]
    counters.append("errors_other")
    counters_text = "\n".join(sections.get("COUNTERS", []))
    if c.check(len(counters) >= 10 and errno_block is not None,
               "could not read the counters of src/core/stats.cpp"):
        for name in counters:
            c.check("user.euphoria." + name in counters_text,
                    "COUNTERS does not list user.euphoria.%s" % name)
    c.check("getfattr -d -m - /mnt/rec" in flat, "COUNTERS lacks the getfattr example")

    # Exit codes: those --help states are the tags of EXIT STATUS.
    exit_line = re.search(r"Exit status: ([^\n]*)", helptext)
    if c.check(exit_line is not None, "--help no longer states the exit status"):
        codes = re.findall(r"\b(\d+) ", exit_line.group(1))
        tags = {t for t, _ in entries_of(sections.get("EXIT STATUS", []))}
        for code in codes:
            c.check(code in tags, "EXIT STATUS has no entry for %s" % code)

    # Files and cross references.
    for needle in ["/sbin/mount.euphoria", "/usr/sbin/mount.euphoria", "/etc/euphoria/",
                   "/var/cache/euphoria/TENANT", "$XDG_CACHE_HOME/euphoria/TENANT"]:
        c.check(needle in flat, "FILES does not mention %s" % needle)
    see_also = squash(" ".join(sections.get("SEE ALSO", [])))
    for ref in ["mount(8)", "fstab(5)", "fusermount3(1)", "systemd.mount(5)"]:
        c.check(ref in see_also, "SEE ALSO lacks " + ref)

    # The footer names the version the binary reports.
    if version:
        th = re.search(r'^\.TH\s+\S+\s+8\s+\S+\s+"euphoriafs ([^"]+)"', source, re.M)
        c.check(th is not None and th.group(1) == version,
                ".TH must say \"euphoriafs %s\" (project version), says %r"
                % (version, th.group(1) if th else None))


def check_readme(c):
    readme = read(README)
    c.check("man/mount.euphoria.8" in readme,
            "README.md does not link the man page (man/mount.euphoria.8)")
    c.check(re.search(r"^\S+\s+/\S+\s+euphoria\s+credentials=\S+", readme, re.M) is not None,
            "README.md does not show an fstab line (TENANT  /mnt/rec  euphoria  credentials=...)")


def main(argv):
    parts = argv[1:] or ["man", "readme"]
    c = Checks("test_man_page " + " ".join(parts))
    if "man" in parts:
        check_man(c)
    if "readme" in parts:
        check_readme(c)
    c.finish()


if __name__ == "__main__":
    main(sys.argv)

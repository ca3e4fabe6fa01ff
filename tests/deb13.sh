#!/usr/bin/env bash
# The deb13 stage of tests/run-all.sh: the normal stage (every test that ctest runs:
# unit, integration, e2e, docs) in a Debian 13 (trixie) chroot, as root on a Debian host.
#
#   bash tests/deb13.sh              # the normal stage
#   bash tests/deb13.sh COMMAND...   # instead, COMMAND in the copied tree (bash: a shell)
#
# - The chroot is made by `debootstrap --variant=minbase trixie` from the host's own
#   Debian mirror (its apt sources), and kept in
#   $EUPHORIA_CHROOT_CACHE/trixie-HASH (default /var/cache/euphoria-ci), HASH over
#   tests/deps.sh, the mirrors and this script's LAYOUT. A new HASH makes a new chroot;
#   chroots unused for a week are removed (branches with different deps.sh keep
#   theirs meanwhile). It is made in a scratch folder and renamed when complete, so an
#   interrupted debootstrap is never reused.
# - Each run takes a lock (one run per chroot at a time), upgrades the chroot's
#   packages, installs what deps.sh lists, copies this working tree in (tracked and
#   untracked files, not ignored ones; mtimes kept, so the build dir kept in the
#   chroot for each working tree rebuilds only what changed; those of a tree unused for
#   a week are removed), empties the chroot's /tmp, and runs
#   `EUPHORIA_STAGES=normal tests/run-all.sh` there, with CI passed through.
# - The chroot runs in a private mount namespace (unshare -m): its own /proc, the
#   host's /sys, and a /dev of its own (fresh null, zero, full, random, urandom, tty
#   and fuse nodes, devpts, /dev/shm), so that a test that binds /dev/log or chmods
#   /dev/fuse does not touch the host's, where the other stages may be running. Every
#   mount in it, FUSE mounts included, goes with the namespace; on exit, even on
#   failure, the trap ends any process still running in the chroot and checks that
#   nothing is left mounted under it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LAYOUT=2  # bump when what goes into a new chroot changes in this script
CACHE=${EUPHORIA_CHROOT_CACHE:-/var/cache/euphoria-ci}
SUITE=trixie
started=$SECONDS

say() { printf 'deb13: %s (%ds)\n' "$*" $((SECONDS - started)); }
die() { echo "deb13: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, mounts)"
for tool in debootstrap unshare chroot flock sha256sum tar; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install debootstrap util-linux coreutils tar)"
done

# --- The host's Debian mirrors, from its apt sources --------------------------------
# Prints "MAIN SECURITY": the URI that serves the host's own release, and the one
# that serves RELEASE-security (or "-" if the host has none).
host_mirrors() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  {
    # deb822 (*.sources): one "URI SUITE" line per URI and suite of each deb stanza.
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -r $f ]] || continue
      awk '
        function flush(   i, j, nu, ns, u, s) {
          if (types ~ /(^| )deb( |$)/ && enabled != "no") {
            nu = split(uris, u, " "); ns = split(suites, s, " ")
            for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
          }
          types = uris = suites = enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
          if (key == "types") types = $0; else if (key == "uris") uris = $0
          else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0) }
        END { flush() }' "$f"
    done
    # One-line format: deb [options] URI SUITE COMPONENT...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -r $f ]] || continue
      sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
    done
  } | awk -v rel="$codename" '
      $2 == rel && !main { main = $1 }
      $2 == rel "-security" && !sec { sec = $1 }
      $2 !~ /-(security|updates|backports|proposed-updates)$/ && !any { any = $1 }
      END { if (!main) main = any; if (main) print main, (sec ? sec : "-") }'
}
read -r MIRROR SECURITY < <(host_mirrors) || true
[[ -n ${MIRROR:-} ]] || die "no Debian mirror found in /etc/apt/sources.list{,.d/*}"
MIRROR=${MIRROR%/}
SECURITY=${SECURITY%/}

# --- The cached chroot ---------------------------------------------------------------
key=$( { echo "layout $LAYOUT $SUITE $MIRROR $SECURITY"; cat tests/deps.sh; } | sha256sum | cut -c1-12)
CHROOT=$CACHE/$SUITE-$key
# Folders in the chroot for this working tree: main and each worktree keep their own
# build dir, so each rebuilds only what it changed.
tree_id=$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)
SRC=/euphoria/src-$tree_id
BUILD=/euphoria/build-$tree_id

mkdir -p "$CACHE"
exec {lock}>"$CACHE/$SUITE.lock"
if ! flock -n "$lock"; then
  say "waiting for another deb13 run to finish (lock $CACHE/$SUITE.lock)"
  flock "$lock"
fi

mounts_under() {  # DIR: mount points at or below DIR in this namespace
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

processes_in() {  # DIR: processes whose root is DIR
  local p dir
  dir=$(realpath "$1")
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$dir" ]] && echo "${p#/proc/}"
  done
  return 0
}

stop_processes_in() {  # DIR: TERM, then KILL, what still runs in the chroot
  local pids
  pids=$(processes_in "$1")
  [[ -z $pids ]] && return 0
  echo "deb13: stopping what still runs in the chroot: $pids" >&2
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do
    pids=$(processes_in "$1")
    [[ -z $pids ]] && return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

remove_tree() {  # DIR: rm -rf, but never through a mount
  local dir=$1
  [[ -e $dir ]] || return 0
  stop_processes_in "$dir"
  mounts_under "$dir" | sort -r | while read -r m; do umount -l "$m" || true; done
  [[ -z $(mounts_under "$dir") ]] || die "$dir still has mounts; not removing it"
  rm -rf --one-file-system "$dir"
}

cleanup() {
  local rc=$?
  if [[ -d ${CHROOT:-} ]]; then
    stop_processes_in "$CHROOT"
    # The mounts were made in a private namespace; none should be here. If one is
    # (a run of an older version of this script), detach it.
    mounts_under "$CHROOT" | sort -r | while read -r m; do
      echo "deb13: unmounting leftover $m" >&2
      umount -l "$m" || true
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

write_sources() {  # DIR
  {
    echo "Types: deb"
    echo "URIs: $MIRROR"
    echo "Suites: $SUITE $SUITE-updates"
    echo "Components: main"
    echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [[ $SECURITY != "-" ]]; then
      echo
      echo "Types: deb"
      echo "URIs: $SECURITY"
      echo "Suites: $SUITE-security"
      echo "Components: main"
      echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi
  } >"$1/etc/apt/sources.list.d/debian.sources"
  rm -f "$1/etc/apt/sources.list"
}

if [[ ! -f $CHROOT/.euphoria-ready ]]; then
  say "creating $CHROOT: debootstrap --variant=minbase $SUITE from $MIRROR"
  scratch=$CHROOT.partial
  remove_tree "$scratch"
  remove_tree "$CHROOT"
  # In a mount namespace of its own, so that what debootstrap mounts in the target
  # goes away with it, even if it is killed.
  unshare --mount --propagation private \
    debootstrap --variant=minbase "$SUITE" "$scratch" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  write_sources "$scratch"
  # What a Debian machine has and minbase does not: localhost, /etc/mtab (which
  # fusermount3 -u reads when an ordinary user unmounts); and no daemons started by
  # package scripts.
  [[ -s $scratch/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$scratch/etc/hosts"
  [[ -e $scratch/etc/mtab || -L $scratch/etc/mtab ]] || ln -s ../proc/self/mounts "$scratch/etc/mtab"
  printf '#!/bin/sh\nexit 101\n' >"$scratch/usr/sbin/policy-rc.d"
  chmod 755 "$scratch/usr/sbin/policy-rc.d"
  mkdir -p "$scratch/euphoria"
  touch "$scratch/.euphoria-ready"
  mv "$scratch" "$CHROOT"
  say "chroot created"
else
  say "reusing $CHROOT"
fi
touch "$CHROOT/.euphoria-ready"  # its last use
# Chroots of another deps.sh or layout, unused for a week; scratch folders of an
# interrupted debootstrap.
for old in "$CACHE/$SUITE"-*; do
  [[ -d $old && $old != "$CHROOT" ]] || continue
  if [[ $old == *.partial ]] || [[ -n $(find "$old/.euphoria-ready" -maxdepth 0 -mtime +7 2>/dev/null) ]] ||
     [[ ! -e $old/.euphoria-ready ]]; then
    say "removing $old"
    remove_tree "$old"
  fi
done

# --- This run -----------------------------------------------------------------------
stop_processes_in "$CHROOT"
[[ -z $(mounts_under "$CHROOT") ]] || die "$CHROOT has mounts from another run: $(mounts_under "$CHROOT" | tr '\n' ' ')"
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
find "$CHROOT/tmp" "$CHROOT/var/tmp" -mindepth 1 -xdev -delete 2>/dev/null || true

# Other trees' copies and build dirs, unused for a week.
find "$CHROOT/euphoria" -mindepth 1 -maxdepth 1 -mtime +7 -exec rm -rf --one-file-system {} + 2>/dev/null || true
say "copying the working tree to $SRC"
rm -rf --one-file-system "${CHROOT:?}$SRC"
mkdir -p "$CHROOT$SRC" "$CHROOT$BUILD"
touch "$CHROOT$BUILD"  # its last use
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
    tar -C "$ROOT" --null --no-recursion -T - -cf - | tar -C "$CHROOT$SRC" -xpf -
else
  tar -C "$ROOT" --exclude='./build*' --exclude=./.git --exclude=__pycache__ --exclude=./bench-out \
    -cf - . | tar -C "$CHROOT$SRC" -xpf -
fi

# Run in the chroot: the host's CI and EUPHORIA_* settings pass through, less the
# stage list and the build dir, which are the chroot's own.
passthrough=()
for name in $(compgen -e); do
  case $name in
    EUPHORIA_STAGES | EUPHORIA_BUILD_DIR | EUPHORIA_CHROOT_CACHE) ;;
    CI | EUPHORIA_*) passthrough+=("$name=${!name}") ;;
  esac
done

inner=$(cat <<'EOF'
set -euo pipefail
root=$1; fuse_mode=$2; shift 2
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=0755,nosuid,size=16m dev "$root/dev"
node() {  # NAME MODE TYPE MAJOR MINOR: a fresh node, or the host's bound if mknod is refused
  mknod -m "$2" "$root/dev/$1" "$3" "$4" "$5" 2>/dev/null ||
    { touch "$root/dev/$1"; mount --bind "/dev/$1" "$root/dev/$1"; }
}
node null 666 c 1 3; node zero 666 c 1 5; node full 666 c 1 7
node random 666 c 1 8; node urandom 666 c 1 9; node tty 666 c 5 0
node fuse "$fuse_mode" c 10 229
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mkdir -m 1777 "$root/run/lock"
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
EOF
)
in_chroot() {  # COMMAND...: run in the chroot, in a private mount namespace
  unshare --mount --propagation private bash -c "$inner" inner "$CHROOT" \
    "$(stat -c %a /dev/fuse 2>/dev/null || echo 666)" "$@"
}

say "upgrading the chroot's packages"
in_chroot bash -c 'export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade >/dev/null'

if (($#)); then
  say "running $* in Debian $(cat "$CHROOT/etc/debian_version"), build dir $BUILD"
  in_chroot "${passthrough[@]}" EUPHORIA_BUILD_DIR="$BUILD" \
    bash -c 'cd "$1" && shift && "$@"' deb13 "$SRC" "$@"
  exit
fi
say "running the normal stage in Debian $(cat "$CHROOT/etc/debian_version")"
in_chroot "${passthrough[@]}" EUPHORIA_STAGES=normal EUPHORIA_BUILD_DIR="$BUILD" \
  bash -c 'cd "$1" && source tests/deps.sh && euphoria_install_deps && apt-get clean &&
           g++ --version | head -n1 && bash tests/run-all.sh' deb13 "$SRC"
say "passed"

#!/usr/bin/env bash
# The main job, on a fresh Debian 12 or 13 machine as root: build euphoriafs, start the
# bundled mock Euphoria API with a few real GSM recordings, mount the demo tenant and
# read a recording through the mount.
#   bash tests/demo.sh        # mount and show
#   bash tests/demo.sh stop   # unmount and stop the mock
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${EUPHORIA_DEMO_DIR:-/tmp/euphoria-demo}
MNT="$DEMO/mnt"

if [[ "${1:-}" == "stop" ]]; then
  fusermount3 -u "$MNT" 2>/dev/null || true
  [[ -f "$DEMO/mock.pid" ]] && kill "$(cat "$DEMO/mock.pid")" 2>/dev/null || true
  rm -rf "$DEMO"
  echo "demo stopped"
  exit 0
fi

source tests/deps.sh
euphoria_install_deps
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mount.euphoria >/dev/null

# A previous run may still be up.
fusermount3 -u "$MNT" 2>/dev/null || true
[[ -f "$DEMO/mock.pid" ]] && kill "$(cat "$DEMO/mock.pid")" 2>/dev/null || true
rm -rf "$DEMO"
mkdir -p "$DEMO/mock" "$MNT"

python3 tests/mock/euphoria_mock.py --state-dir "$DEMO/mock" --demo >"$DEMO/mock.log" 2>&1 &
echo $! >"$DEMO/mock.pid"
for _ in $(seq 200); do [[ -f "$DEMO/mock/ports.json" ]] && break; sleep 0.1; done
API_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$DEMO/mock/ports.json")

# The key lives in a 0600 file, never on the command line.
install -m 600 /dev/null "$DEMO/demo.cred"
printf 'tenant=demo\nauth=demo-key-123\n' >"$DEMO/demo.cred"

set -x
build/mount.euphoria demo "$MNT" -o "credentials=$DEMO/demo.cred,endpoint=https://127.0.0.1:$API_PORT/Euphoria.Api.aspx,cafile=$DEMO/mock/ca.pem,cache_dir=$DEMO/cache"
{ set +x; } 2>/dev/null

NAME=$(ls "$DEMO/mock/demo-recordings" | head -n1)
echo
echo "== soxi on a recording, read through the mount (one API call)"
soxi "$MNT/$NAME"
echo "== cp it out"
cp -v "$MNT/$NAME" "$DEMO/$NAME"
cmp "$MNT/$NAME" "$DEMO/mock/demo-recordings/$NAME" && echo "byte-exact"
for other in $(ls "$DEMO/mock/demo-recordings" | tail -n +2); do stat -c '%n: %s bytes' "$MNT/$other"; done
echo "== ls -l shows what has been fetched (times are the calls' start times)"
ls -l "$MNT"
echo "== counters"
getfattr -d -m - "$MNT"
echo
echo "Mounted at $MNT. Play a recording: play \"$MNT/$NAME\""
echo "Unmount with: fusermount3 -u $MNT   (or: bash tests/demo.sh stop, which also stops the mock)"

# Sourced by the run_*_bench.sh scripts: what each needs before it times anything.
# The caller sets `script` (its own name, for messages) first.

# find_bench NAME VARIABLE: the NAME binary, from $VARIABLE if set, else from the
# build tree; exits 2 when there is none.
find_bench() {
    local name=$1 variable=$2 override=${!2:-} here candidate
    if [[ -n $override ]]; then
        bench=$override
    else
        bench=
        here=$(cd "$(dirname "$0")" && pwd)
        for candidate in "./tests/bench/$name" "./$name" "$here/../../build/tests/bench/$name"; do
            if [[ -x $candidate ]]; then bench=$candidate; break; fi
        done
    fi
    if [[ -z $bench || ! -x $bench ]]; then
        echo "$script: $name not found; set $variable" >&2
        exit 2
    fi
}

need_tools() {  # TOOL...: exits 2 naming the first one missing
    local tool
    for tool in "$@"; do
        command -v "$tool" > /dev/null || { echo "$script: needs $tool" >&2; exit 2; }
    done
}

# A scratch folder, gone when the script exits.
make_work_dir() {
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
}

median() {  # numbers on stdin, one a line
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

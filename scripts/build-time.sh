#!/usr/bin/env bash
# Build-time benchmark (issue #17 point 8; BENCHMARKS.md "Build time").
#
# Times what a newcomer's first `cargo run --release` builds — a clean
# `cargo build --release --bin arvis` — and then, in another fresh target
# directory, the whole workspace as the benchmark command builds it
# (`cargo build --release --workspace --bins`). Each build gets an empty target
# directory of its own, so nothing is reused; the crates are downloaded first
# (`cargo fetch`) so the network is not timed.
#
# Prints, per build: wall time, CPU time (user + system), the number of units
# and the ten longest units from cargo's --timings report, after a host
# reference (one C compile of the bundled SQLite) that shows how fast the host
# is at the time. Run it on an idle
# machine: with two cores the build is CPU-bound, so anything else running
# shows up in the wall time. Compare runs made on the same host, one after the
# other; hosts of the same kind differ by up to 2x.
#
#   scripts/build-time.sh            # both builds
#   scripts/build-time.sh launcher   # only the first `cargo run --release`
#   scripts/build-time.sh workspace  # only the whole workspace
#
# The target directories are deleted afterwards, unless BUILD_TIME_KEEP names a
# directory to leave them in (its `launcher/` and `workspace/` are emptied
# first), e.g. to run the freshly built `loadgen` from it.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-both}"
case "$what" in
    both | launcher | workspace) ;;
    *) echo "usage: $0 [launcher|workspace]" >&2; exit 2 ;;
esac

cargo fetch --quiet
if [ -n "${BUILD_TIME_KEEP:-}" ]; then
    scratch="$BUILD_TIME_KEEP"
    mkdir -p "$scratch"
    rm -rf "${scratch:?}/launcher" "${scratch:?}/workspace"
else
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/arvis-build-time.XXXXXX")"
    trap 'rm -rf "$scratch"' EXIT
fi

measure() { # name, cargo args...
    local name="$1"; shift
    echo "== $name: cargo build --release $* (clean target)"
    echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 - "$scratch/$name" "$@" <<'EOF'
import glob, json, os, re, resource, subprocess, sys, time
target, args = sys.argv[1], sys.argv[2:]
env = dict(os.environ, CARGO_TARGET_DIR=target)
start = time.monotonic()
build = subprocess.run(["cargo", "build", "--release", "--quiet", "--timings", *args], env=env)
wall = time.monotonic() - start
if build.returncode != 0:
    sys.exit(build.returncode)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
report = sorted(glob.glob(f"{target}/cargo-timings/cargo-timing-2*.html"))[-1]
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", open(report).read(), re.S).group(1))
print(f"   wall {int(wall // 60)} min {wall % 60:04.1f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s "
      f"({usage.ru_utime:.0f} user + {usage.ru_stime:.0f} system), {len(units)} units")
print("   longest units (s):")
for u in sorted(units, key=lambda u: -u["duration"])[:10]:
    label = u["name"] + (f" ({u['target'].strip()})" if u["target"].strip() else "")
    print(f"     {u['duration']:6.1f}  {label}")
EOF
}

# The host's own speed, to compare rows across hosts and hours (a VM's speed
# drifts with its neighbours): one single-threaded C compile of the bundled
# SQLite, the build's largest C file.
reference() {
    local lock_version src
    lock_version=$(awk '/^name = "libsqlite3-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
    src="${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"libsqlite3-sys-$lock_version"/sqlite3/sqlite3.c
    # shellcheck disable=SC2086 # the glob is meant to expand
    set -- $src
    if [ ! -f "$1" ] || ! command -v cc >/dev/null; then
        echo "== host reference: skipped (no sqlite3.c of libsqlite3-sys $lock_version, or no cc)"
        return
    fi
    local start end
    start=$(date +%s%N)
    cc -O2 -DSQLITE_THREADSAFE=1 -c "$1" -o "$scratch/sqlite3.o"
    end=$(date +%s%N)
    echo "== host reference: cc -O2 -c sqlite3.c took $(( (end - start) / 1000000 )) ms (one core)"
}

reference
if [ "$what" != workspace ]; then measure launcher --bin arvis; fi
if [ "$what" != launcher ]; then measure workspace --workspace --bins; fi

# The preamble of every bash suite (tests/cli/*, tests/fsck/run, tests/damage/run,
# tests/package/run, tests/qemu/*). A suite starts with
#
#     source "$(dirname "$0")/../lib/preamble.sh" SUITE-NAME "$@"
#     set -- "${args[@]}"
#
# and ends with `finish`. What it gets:
#   $repo, cwd       the repository root (the suite runs from there)
#   $bin             the directory of the built tools, absolute: `--bin DIR` (every suite takes
#                    it first), or a first operand that is a directory, or $VIRTFS_BIN, else
#                    .build/debug
#   args             the suite's operands with the binary directory taken out
#   pass/fail/expect/verdict/check/same_files   one check each, counted; one line per check:
#                    "ok   LABEL" or "FAIL LABEL" followed by indented details
#   skip_check LABEL REASON          a check that could not run here: "SKIP LABEL: REASON",
#                    counted apart, never as passed
#   skip REASON      the whole suite cannot run here: a reason on stderr, exit 77
#                    (scripts/test reports it as skipped)
#   need_root/need_cmd/need_fuse/need_qemu REASON   prerequisites that skip the suite
#   need_tools TOOL...   built tools the suite runs (missing: exit 1, a failure)
#   have_qemu        whether QEMU and a guest kernel are installed (suites that make missing
#                    QEMU a failure rather than a skip)
#   workdir PREFIX   $work: a fresh directory under /tmp (mode 755, so uid 65534 can reach
#                    it), removed on exit unless $VIRTFS_KEEP is set
#   at_exit COMMAND  cleanup run on exit, last registered first, before $work is removed
#   finish [NOTE]    the closing line "SUITE: N passed, N failed[, N skipped][ (NOTE)]" and the
#                    exit status: 0 if nothing failed and something was checked, else 1
set -uo pipefail

suite=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0 failed=0 skipped=0

_bin=${VIRTFS_BIN:-}
args=()
if [[ ${1:-} == --bin ]]; then
    _bin=${2:?--bin needs a directory}
    shift 2
elif [[ -n ${1:-} && -d $1 ]]; then
    _bin=$1
    shift
fi
args=("$@")
bin=$(realpath -m "${_bin:-$repo/.build/debug}")
unset _bin
cd "$repo" || exit 1

pass() { # LABEL
    passed=$((passed + 1))
    echo "ok   $1"
}
fail() { # LABEL DETAIL...
    failed=$((failed + 1))
    echo "FAIL $1"
    shift
    local d
    for d in "$@"; do [[ -n $d ]] && printf '%s\n' "$d"; done | head -40 | sed 's/^/     /'
    return 0
}
expect() { # LABEL EXPECTED ACTUAL
    if [[ "$2" == "$3" ]]; then
        pass "$1"
    else
        fail "$1" "expected: $(printf %q "$2")" "actual:   $(printf %q "$3")"
    fi
}
verdict() { # LABEL yes|no DETAIL...
    local label=$1 ok=$2
    shift 2
    if [[ $ok == yes ]]; then pass "$label"; else fail "$label" "$@"; fi
}
check() { # LABEL COMMAND...: passes if COMMAND succeeds; $detail (then cleared) explains a failure
    local label=$1
    shift
    if "$@"; then pass "$label"; else fail "$label" "${detail:-}"; fi
    detail=
}
same_files() { # LABEL FILE-A FILE-B: the two listings are identical (and not empty)
    local label=$1 a=$2 b=$3
    if [[ -s $a ]] && cmp -s "$a" "$b"; then
        pass "$label ($(wc -l <"$a") entries)"
    else
        fail "$label" "$(diff "$a" "$b" | head -30)"
    fi
}
skip_check() { # LABEL REASON
    skipped=$((skipped + 1))
    echo "SKIP $1: $2"
}

skip() { # REASON
    echo "$suite: SKIPPED: $*" >&2
    exit 77
}
need_root() { # REASON
    [[ $(id -u) == 0 ]] || skip "needs root ($*)"
}
need_cmd() { # COMMAND REASON
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null || skip "$cmd is not installed${*:+ ($*)}"
}
need_fuse() {
    [[ -c /dev/fuse ]] || skip "no /dev/fuse"
    need_cmd fusermount3 "Debian package fuse3"
}
need_tools() { # TOOL...: built tools the suite runs; missing ones are a failure, not a skip
    local tool
    for tool in "$@"; do
        [[ -x $bin/$tool ]] || { echo "$suite: FAIL: $bin/$tool is missing (build first)" >&2; exit 1; }
    done
}
have_qemu() {
    "$repo/tests/qemu/setup" >/dev/null 2>&1
}
need_qemu() { # QEMU, a guest kernel with 9p and busybox, and the boot helpers of tests/qemu/lib.sh
    have_qemu || skip "QEMU and a guest kernel could not be installed on this machine (tests/qemu/setup)"
    source "$repo/tests/qemu/lib.sh"
}

_cleanups=()
at_exit() { # COMMAND (a string, run with eval)
    _cleanups=("$1" "${_cleanups[@]}")
}
_on_exit() {
    local c
    for c in "${_cleanups[@]}"; do eval "$c"; done
    if [[ -n ${work:-} && -d $work ]]; then
        if [[ -n ${VIRTFS_KEEP:-} ]]; then echo "$suite: kept $work" >&2; else rm -rf "$work"; fi
    fi
}
trap _on_exit EXIT
workdir() { # PREFIX
    work=$(mktemp -d "/tmp/virtfs-$1.XXXXXX") || exit 1
    chmod 755 "$work"
}

finish() { # [NOTE]
    local line="$suite: $passed passed, $failed failed"
    ((skipped > 0)) && line+=", $skipped skipped"
    [[ -n ${1:-} ]] && line+=" ($1)"
    echo "$line"
    if ((passed + failed == 0)); then
        echo "$suite: no check ran" >&2
        exit 1
    fi
    ((failed == 0)) && exit 0
    exit 1
}

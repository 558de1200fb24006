# shellcheck shell=bash
# Shared by guests/{python,js,c}/build.sh (sourced, not run).
#
# Tools come from the cache that `.ci/install-polyglot-tools` fills
# ($ARMONIK_WASM_TOOLS_DIR, default ~/.cache/armonik-wasm-tools), else from PATH.
# A build script exits with status 3 when a tool is missing, so callers can tell
# "run the install script" apart from a failed build.

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIT_DIR="$REPO_DIR/wit"
TOOLS_DIR="${ARMONIK_WASM_TOOLS_DIR:-$HOME/.cache/armonik-wasm-tools}"
# Exit status of a build script whose tools are missing.
MISSING_TOOLS=3

# parse_build_args SCRIPT OUTDIR [EXAMPLE...]: sets OUT (absolute, created) and EXAMPLES
# (default: every example), or prints the usage and exits with 2.
parse_build_args() {
    local script=$1
    shift
    if [[ $# -lt 1 ]]; then
        echo "usage: $script OUTDIR [EXAMPLE...]" >&2
        exit 2
    fi
    mkdir -p "$1"
    OUT="$(cd "$1" && pwd)"
    shift
    EXAMPLES=("$@")
    [[ ${#EXAMPLES[@]} -gt 0 ]] || EXAMPLES=(echo concat fanout fail)
}

# missing_tool NAME: says how to get it, and exits with $MISSING_TOOLS.
missing_tool() {
    echo "error: $1 is not installed: run .ci/install-polyglot-tools (it installs every tool the Python, JavaScript and C guests need)" >&2
    exit "$MISSING_TOOLS"
}

# find_tool NAME: prints the path of NAME from the tools cache (bin/, venv/bin/) or PATH.
find_tool() {
    local name=$1 candidate
    for candidate in "$TOOLS_DIR/bin/$name" "$TOOLS_DIR/venv/bin/$name"; do
        if [[ -x $candidate ]]; then
            echo "$candidate"
            return 0
        fi
    done
    command -v "$name" || missing_tool "$name"
}

# inputs_digest TEXT FILE...: a digest of TEXT (e.g. the tools' versions) and of the files'
# names and contents, to skip a build whose inputs did not change.
inputs_digest() {
    {
        printf '%s\n' "$1"
        shift
        local file
        for file in "$@"; do
            printf '%s\n' "${file#"$REPO_DIR"/}"
            sha256sum <"$file"
        done
    } | sha256sum | cut -d' ' -f1
}

# up_to_date OUT DIGEST: whether OUT exists and was built from inputs with DIGEST.
up_to_date() {
    [[ -s $1 && -f $1.inputs && "$(cat "$1.inputs")" == "$2" ]]
}

# mark_built OUT DIGEST: records the digest of the inputs OUT was built from.
mark_built() {
    printf '%s\n' "$2" >"$1.inputs"
}

# wit_files: every file of the WIT world, sorted.
wit_files() {
    find "$WIT_DIR" -type f -name '*.wit' | LC_ALL=C sort
}

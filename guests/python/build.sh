#!/usr/bin/env bash
# Builds the Python example guests into components of the armonik:worker world, with
# componentize-py (installed by .ci/install-polyglot-tools):
#
#     guests/python/build.sh OUTDIR [EXAMPLE...]     # default: echo concat fanout fail
#
# writes OUTDIR/python-<example>.wasm. A component whose inputs (the example, the
# armonik_wasm package, the WIT world, the tool's version) did not change is not rebuilt.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=guests/build-lib.sh
source "$HERE/../build-lib.sh"

parse_build_args "$0" "$@"

COMPONENTIZE_PY="$(find_tool componentize-py)"
TOOL_VERSIONS="$("$COMPONENTIZE_PY" --version)"
mapfile -t WIT < <(wit_files)
# Only the app's own directories go on the Python path: nothing of the environment that runs
# the tool (a VIRTUAL_ENV's site-packages would be added to the component).
unset VIRTUAL_ENV

for example in "${EXAMPLES[@]}"; do
    source_file="$HERE/examples/$example.py"
    [[ -f $source_file ]] || { echo "error: no example $source_file" >&2; exit 2; }
    out="$OUT/python-$example.wasm"
    digest="$(inputs_digest "$TOOL_VERSIONS" "$HERE/build.sh" "$HERE/../build-lib.sh" \
        "$HERE"/armonik_wasm/*.py "$source_file" "${WIT[@]}")"
    if up_to_date "$out" "$digest"; then
        echo "python-$example.wasm: up to date"
        continue
    fi
    started=$SECONDS
    # The world's own `types` interface is renamed `armonik_worker_types` by componentize-py,
    # as `wasi:filesystem/types` is also imported; armonik_wasm imports it under that name.
    "$COMPONENTIZE_PY" -q -d "$WIT_DIR" -w armonik:worker/worker componentize "$example" \
        -p "$HERE/examples" -p "$HERE" -o "$out.tmp"
    mv "$out.tmp" "$out"
    mark_built "$out" "$digest"
    echo "python-$example.wasm: built in $((SECONDS - started)) s ($(stat -c %s "$out") bytes)"
done

#!/usr/bin/env bash
# Builds the JavaScript example guests into components of the armonik:worker world, with
# componentize-js from guests/js/node_modules (`npm ci` there; .ci/install-polyglot-tools
# does it):
#
#     guests/js/build.sh OUTDIR [EXAMPLE...]     # default: echo concat fanout fail
#
# writes OUTDIR/js-<example>.wasm. A component whose inputs (the example, src/, the WIT world,
# package-lock.json) did not change is not rebuilt.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=guests/build-lib.sh
source "$HERE/../build-lib.sh"

parse_build_args "$0" "$@"

command -v node >/dev/null || missing_tool node
COMPONENTIZE_JS="$HERE/node_modules/.bin/componentize-js"
[[ -x $COMPONENTIZE_JS ]] || missing_tool "componentize-js (guests/js/node_modules)"
# componentize-js's own version is in package-lock.json, an input of every component.
TOOL_VERSIONS="node $(node --version)"
mapfile -t WIT < <(wit_files)
mapfile -t SOURCES < <(find "$HERE/src" -type f -name '*.js' | LC_ALL=C sort)

# componentize-js resolves the module's relative imports from the working directory, so run
# it from guests/js with a relative source path.
cd "$HERE"
for example in "${EXAMPLES[@]}"; do
    source_file="examples/$example.js"
    [[ -f $source_file ]] || { echo "error: no example $HERE/$source_file" >&2; exit 2; }
    out="$OUT/js-$example.wasm"
    digest="$(inputs_digest "$TOOL_VERSIONS" "$HERE/build.sh" "$HERE/../build-lib.sh" "$HERE/package-lock.json" \
        "${SOURCES[@]}" "$HERE/$source_file" "${WIT[@]}")"
    if up_to_date "$out" "$digest"; then
        echo "js-$example.wasm: up to date"
        continue
    fi
    started=$SECONDS
    # componentize-js says only how many syntax errors there are: let node name them.
    for file in "$source_file" "${SOURCES[@]}"; do
        node --check "$file"
    done
    # `-d http fetch-event`: no wasi:http imports, which a plain WASI 0.2 host does not link.
    # It reports success and some errors on stdout: show that only if it fails.
    if ! said="$("$COMPONENTIZE_JS" "$source_file" --wit "$WIT_DIR" -n armonik:worker/worker \
        -d http fetch-event -o "$out.tmp" 2>&1)"; then
        echo "$said" >&2
        echo "error: componentize-js failed on $HERE/$source_file" >&2
        exit 1
    fi
    mv "$out.tmp" "$out"
    mark_built "$out" "$digest"
    echo "js-$example.wasm: built in $((SECONDS - started)) s ($(stat -c %s "$out") bytes)"
done

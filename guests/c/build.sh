#!/usr/bin/env bash
# Builds the C example guests into components of the armonik:worker world:
#
#     guests/c/build.sh OUTDIR [EXAMPLE...]     # default: echo concat fanout fail
#
# writes OUTDIR/c-<example>.wasm. The tools come from .ci/install-polyglot-tools:
# `wit-bindgen c` generates the world's bindings (OUTDIR/c-bindings), zig cc (PyPI ziglang)
# compiles for wasm32-wasi (preview1, reactor), and `wasm-tools component new` wraps the core
# module into a component with the WASI preview1 adapter of wasmtime 48. A component whose
# inputs (sources, WIT world, tool versions) did not change is not rebuilt.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=guests/build-lib.sh
source "$HERE/../build-lib.sh"

parse_build_args "$0" "$@"

ADAPTER_VERSION=48.0.8
ADAPTER="${ARMONIK_WASM_ADAPTER:-$TOOLS_DIR/adapters/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm}"
WASM_TOOLS="$(find_tool wasm-tools)"
WIT_BINDGEN="$(find_tool wit-bindgen)"
ZIG="$(find_tool python-zig)"
[[ -s $ADAPTER ]] || missing_tool "the WASI preview1 adapter ($ADAPTER)"
TOOL_VERSIONS="$("$WASM_TOOLS" --version) $("$WIT_BINDGEN" --version) zig $("$ZIG" version) adapter $(sha256sum <"$ADAPTER")"
mapfile -t WIT < <(wit_files)

# The world's bindings: worker.h, worker.c, worker_component_type.o (the world's type, which
# `component new` reads).
GEN="$OUT/c-bindings"
gen_digest="$(inputs_digest "$TOOL_VERSIONS" "$HERE/build.sh" "${WIT[@]}")"
if ! up_to_date "$GEN/worker.c" "$gen_digest"; then
    rm -rf "$GEN"
    # It names every file it writes on stderr: show that only if it fails.
    if ! said="$("$WIT_BINDGEN" c "$WIT_DIR" --world armonik:worker/worker --out-dir "$GEN" 2>&1)"; then
        echo "$said" >&2
        exit 1
    fi
    mark_built "$GEN/worker.c" "$gen_digest"
fi

CFLAGS=(--target=wasm32-wasi -mexec-model=reactor -Os -std=c11 -I "$GEN" -I "$HERE")
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

for example in "${EXAMPLES[@]}"; do
    source_file="$HERE/examples/$example.c"
    [[ -f $source_file ]] || { echo "error: no example $source_file" >&2; exit 2; }
    out="$OUT/c-$example.wasm"
    digest="$(inputs_digest "$TOOL_VERSIONS" "$HERE/build.sh" "$HERE/../build-lib.sh" "$HERE/armonik_task.h" \
        "$HERE/armonik_task.c" "$source_file" "${WIT[@]}")"
    if up_to_date "$out" "$digest"; then
        echo "c-$example.wasm: up to date"
        continue
    fi
    started=$SECONDS
    # Generated code without warnings; ours with every warning an error.
    "$ZIG" cc "${CFLAGS[@]}" -c "$GEN/worker.c" -o "$WORK/worker.o"
    "$ZIG" cc "${CFLAGS[@]}" -Wall -Wextra -Werror -c "$HERE/armonik_task.c" -o "$WORK/armonik_task.o"
    "$ZIG" cc "${CFLAGS[@]}" -Wall -Wextra -Werror -c "$source_file" -o "$WORK/$example.o"
    "$ZIG" cc "${CFLAGS[@]}" -s -o "$WORK/$example.core.wasm" "$WORK/$example.o" \
        "$WORK/armonik_task.o" "$WORK/worker.o" "$GEN/worker_component_type.o"
    "$WASM_TOOLS" component new "$WORK/$example.core.wasm" \
        --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$out.tmp"
    mv "$out.tmp" "$out"
    mark_built "$out" "$digest"
    echo "c-$example.wasm: built in $((SECONDS - started)) s ($(stat -c %s "$out") bytes)"
done

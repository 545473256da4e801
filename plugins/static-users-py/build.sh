#!/usr/bin/env sh
# Builds this plugin into a WebAssembly component with componentize-py.
#
#   ./build.sh [WIT_DIR] [OUT.wasm]
#
# --stub-wasi replaces every WASI import with a trapping stub: CPython's
# runtime would otherwise import wasi:filesystem and wasi:sockets, which
# Portcullis refuses. The interpreter is pre-initialised at build time, so
# nothing at run time needs them; use host.log and host.now_unix_ms instead
# of print and time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wit=${1:-$here/wit}
out=${2:-$here/plugin.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
case $wit in /*) ;; *) wit=$PWD/$wit ;; esac
cd "$here"
"${COMPONENTIZE_PY:-componentize-py}" -d "$wit" -w authenticator componentize --stub-wasi app -o "$out"

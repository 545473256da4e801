#!/usr/bin/env sh
# Builds this plugin into a WebAssembly component with componentize-py.
#
#   ./build.sh [WIT_DIR] [OUT.wasm]
#
# --stub-wasi replaces every WASI import with a trapping stub: CPython's
# runtime would otherwise import wasi:filesystem and wasi:sockets, which
# Portcullis links only inert (nothing behind them). The interpreter is
# pre-initialised at build time, so nothing at run time needs them; use
# host.log and host.now_unix_ms instead of print and time. (A plugin that
# calls HTTP must build without it: see plugins/http-allow-py.)
#
# portcullis_sdk comes from the virtual environment (`pip install -r
# requirements.txt` into .venv): componentize-py adds $VIRTUAL_ENV's
# site-packages to the app's path, and this script sets VIRTUAL_ENV to the
# project's .venv when no environment is active. PORTCULLIS_SDK_PY names a
# directory holding portcullis_sdk instead (a checkout's sdk/python).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wit=${1:-$here/wit}
out=${2:-$here/plugin.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
case $wit in /*) ;; *) wit=$PWD/$wit ;; esac
cd "$here"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -d .venv ]; then
    VIRTUAL_ENV=$here/.venv
    export VIRTUAL_ENV
fi
componentize=${COMPONENTIZE_PY:-componentize-py}
if [ -z "${COMPONENTIZE_PY:-}" ] && [ -x "${VIRTUAL_ENV:-}/bin/componentize-py" ]; then
    componentize=$VIRTUAL_ENV/bin/componentize-py
fi
"$componentize" -d "$wit" -w authenticator componentize --stub-wasi \
    -p . ${PORTCULLIS_SDK_PY:+-p "$PORTCULLIS_SDK_PY"} app -o "$out"

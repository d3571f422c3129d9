#!/usr/bin/env bash
# Check this project on a GPU box without a package registry: install it offline from the
# wheelhouse, print the versions (CUDA, CuPy, NumPy, Chainer), run the `gpu`-marked tests and a
# short benchmark. Exits non-zero on any failure, "no GPU visible" included.
#   usage: tools/gpu_check.sh [PYTHON] [WHEELHOUSE]      (defaults: python3, wheelhouse)
#   environment: NO_INSTALL=1 skips the install; OUT=folder for the benchmark tables
#   (default results/gpu-check). Pick the GPU with CUDA_VISIBLE_DEVICES.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
wheelhouse=${2:-$repo/wheelhouse}
# Paths are taken from the current folder, then the checkout's root becomes the current folder.
absolute() {
    case $1 in
        */*) if [ -d "$(dirname "$1")" ]; then
                 echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; else echo "$1"; fi;;
        *) echo "$1";;
    esac
}
python=$(absolute "$python")
case $wheelhouse in /*) ;; *) wheelhouse="$PWD/$wheelhouse";; esac
cd "$repo"
out=${OUT:-results/gpu-check}
start=$(date +%s)

if [ "${NO_INSTALL:-0}" != 1 ]; then
    bash tools/install_offline.sh "$python" "$wheelhouse"
fi

echo "== versions"
"$python" - <<'PY'
import platform
import sys

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import numpy

print('python {}  numpy {}  chainer {}  host {}'.format(
    platform.python_version(), numpy.__version__, chainer.__version__, platform.node()))


def no_gpu(reason):
    print('error: no GPU visible: {}'.format(reason), file=sys.stderr)
    sys.exit(1)


def cuda_version(number):
    return '{}.{}'.format(number // 1000, number % 1000 // 10)


try:
    import cupy
except Exception as e:
    no_gpu('CuPy does not import ({}: {})'.format(type(e).__name__, str(e).splitlines()[0]
                                                   if str(e) else ''))
try:
    runtime = cupy.cuda.runtime
    count = runtime.getDeviceCount()
    print('cupy {}  CUDA runtime {}  CUDA driver {}  cuDNN in Chainer: {}'.format(
        cupy.__version__, cuda_version(runtime.runtimeGetVersion()),
        cuda_version(runtime.driverGetVersion()), chainer.backends.cuda.cudnn_enabled))
except Exception as e:
    no_gpu('CUDA does not answer ({}: {})'.format(type(e).__name__, e))
if count == 0:
    no_gpu('CUDA reports 0 devices (CUDA_VISIBLE_DEVICES={!r})'.format(
        __import__('os').environ.get('CUDA_VISIBLE_DEVICES')))
for i in range(count):
    props = runtime.getDeviceProperties(i)
    name = props['name'].decode() if isinstance(props['name'], bytes) else props['name']
    print('GPU {}: {}, {:.0f} GiB, compute capability {}.{}'.format(
        i, name, props['totalGlobalMem'] / 2**30, props['major'], props['minor']))

from lenses_common.device import gpu_available  # what the test suite uses to skip GPU tests
if not gpu_available():
    no_gpu('lenses_common.device.gpu_available() is False')
PY

echo "== gpu-marked tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$python" -m pytest -p no:cacheprovider -q -rs -m gpu tests 2>&1 | tee "$log"
if grep -Eq '[0-9]+ skipped' "$log"; then
    echo "error: some gpu tests were skipped; they must run here" >&2
    exit 1
fi

echo "== short benchmark (tables in $out/)"
"$python" -m Friendly.bench --device @cupy:0 --out "$out" --repeats 20 --pd-repeats 10 \
    --fgsm-images 2000 --pd-fgsm-images 400 --skip-layers
"$python" -m Counting.bench --device @cupy:0 --out "$out" --iterations 3 \
    --skip generator detection
cat "$out/friendly.md" "$out/counting.md"
echo "gpu check passed in $(( $(date +%s) - start )) s"

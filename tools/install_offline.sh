#!/usr/bin/env bash
# Install this project from a wheelhouse (`make wheelhouse`) into an existing Python that already
# has NumPy (and CuPy), without any package registry. The NumPy and CuPy it has are pinned as
# constraints, so pip can never replace them, and are compared before and after.
#   usage: tools/install_offline.sh PYTHON [WHEELHOUSE]     (WHEELHOUSE defaults to wheelhouse)
set -euo pipefail

python=${1:?usage: tools/install_offline.sh PYTHON [WHEELHOUSE]}
wheelhouse=${2:-wheelhouse}
# A path to the interpreter (not a bare name looked up on PATH) is made absolute.
absolute() {
    case $1 in
        */*) if [ -d "$(dirname "$1")" ]; then
                 echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; else echo "$1"; fi;;
        *) echo "$1";;
    esac
}
python=$(absolute "$python")

fail() { echo "error: $*" >&2; exit 2; }
"$python" -c '' 2>/dev/null || fail "PYTHON=$python is not a working Python interpreter"
[ -d "$wheelhouse" ] || fail "wheelhouse folder $wheelhouse/ is missing; run \`make wheelhouse\`" \
    "where the package registry is reachable and copy the folder here"
ls "$wheelhouse"/alternate_lenses-*.whl >/dev/null 2>&1 \
    || fail "$wheelhouse/ holds no alternate_lenses wheel; rebuild it with \`make wheelhouse\`"
"$python" -c 'import numpy' 2>/dev/null \
    || fail "$python has no NumPy; this installs into a Python that has NumPy (and CuPy) already"

# name==version of NumPy and every CuPy distribution the target Python has.
array_packages() {
    "$python" - <<'PY' | sort -u
import importlib.metadata as md
for dist in md.distributions():
    name = (dist.metadata['Name'] or '').lower()
    if name == 'numpy' or name.startswith('cupy'):
        print('{}=={}'.format(name, dist.version))
PY
}

before=$(array_packages)
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
printf '%s\n' "$before" > "$pins"
echo "keeping: $(echo $before)"

# --isolated: no pip configuration or PIP_* variables (an index, find-links) take part.
pip=("$python" -m pip --isolated install --no-index --only-binary=:all: --find-links "$wheelhouse")
# The same version number may stand for newer code: put the project itself in first, then
# resolve its requirements (an installed project's too) against the pinned NumPy and CuPy.
"${pip[@]}" --no-deps --force-reinstall alternate-lenses
"${pip[@]}" --constraint "$pins" alternate-lenses

after=$(array_packages)
if [ "$before" != "$after" ]; then
    echo "error: NumPy or CuPy changed: before: $(echo $before); after: $(echo $after)" >&2
    exit 1
fi
# Import the installed copy (not a checkout in the current folder).
(cd / && "$python" -c '
import lenses_common, chainer, numpy, shapely
print("installed: alternate-lenses from {}; chainer {}, numpy {}, shapely {}".format(
    lenses_common.__path__[0], chainer.__version__, numpy.__version__, shapely.__version__))')

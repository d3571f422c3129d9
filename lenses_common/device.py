"""Choosing the Chainer device from one ``--device`` specifier."""
from lenses_common import compat  # noqa: F401
import chainer


class DeviceError(ValueError):
    """A device specifier that cannot be used here."""


def gpu_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def default_device_spec():
    """``@cupy:0`` when CuPy and a GPU are usable, else ``@numpy``."""
    return '@cupy:0' if gpu_available() else '@numpy'


def get_device(spec=None):
    """Return the ``chainer.backend.Device`` for ``spec`` (None or '' means the default).

    Raises :class:`DeviceError` with a readable message for an unknown specifier, or for CuPy asked
    for where CuPy or a GPU is missing.
    """
    if spec is None or spec == '' or spec == 'auto':
        spec = default_device_spec()
    spec = str(spec)
    if spec.startswith('@cupy') or spec.lstrip('-').isdigit() and int(spec) >= 0:
        if not gpu_available():
            raise DeviceError(
                '--device {}: CuPy with a visible GPU is required for this device; install it with '
                '`pip install .[gpu]` or use --device @numpy'.format(spec))
    if spec.startswith('@intel64'):
        raise DeviceError('--device {}: iDeep is not supported by this project; use @numpy or '
                          '@cupy:N'.format(spec))
    try:
        device = chainer.get_device(spec)
    except Exception as e:
        raise DeviceError('--device {}: not a Chainer device specifier ({}); use @numpy or '
                          '@cupy:N'.format(spec, e)) from None
    return device


def add_device_argument(parser):
    parser.add_argument(
        '--device', '-d', default=None,
        help='Chainer device specifier: @numpy for the CPU, @cupy:N for GPU N '
             '(default: @cupy:0 when CuPy sees a GPU, otherwise @numpy)')
    return parser


def device_from_args(args, parser=None):
    """Resolve ``args.device``; on a bad value exit through ``parser.error`` when given."""
    try:
        device = get_device(args.device)
    except DeviceError as e:
        if parser is None:
            raise
        parser.error(str(e))
    device.use()
    return device

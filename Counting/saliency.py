"""Saliency maps of a counter (thesis 2.1.5 and 2.2.1, after Simonyan, Vedaldi and Zisserman).

The saliency of an image is the gradient of the *sum* of the counter's outputs (all shape types)
with respect to the image, reduced per pixel to the largest absolute value over the channels:
``saliency[y, x] = max_c |d sum(outputs) / d image[c, y, x]|``. ``--output tri`` (or ``sq``)
differentiates that one output instead, the saliency of one shape type (thesis 2.2.2 asks whether
it can be used; the sum stays the default). Its picture is
``round(255 * s / max(s))`` with ``s = saliency ** (1/10)``: the thesis's tenth root brings the
extremes closer together so the map stays readable.

The model always runs in test mode (``chainer.config.train = False``), so Batch Renormalization
uses its running averages and every image in a batch is independent of the others.

Command line::

    python -m Counting.saliency --run RUN_DIR --images FOLDER --out DIR [--names 0000.png ...]
        [--limit N] [--output sum|tri|sq] [--device D]

writes ``<name>_saliency.png`` for each image.
"""
import os
import sys

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import numpy
from PIL import Image

from lenses_common.device import add_device_argument, device_from_args, positive_int
from lenses_common.progress import Progress, add_progress_argument
from lenses_common.runfolder import atomic_path, check_out_arg
from lenses_common import cli, lock


# ---------------------------------------------------------------------------------------------
# Math

def as_batch(model, x):
    """``x`` as a one-image batch ``(1, C, H, W)`` on ``model``'s device.

    Accepts ``(C, H, W)`` or ``(1, C, H, W)``, NumPy or CuPy. A floating ``x`` keeps its dtype (so
    a float64 model can be checked in float64); anything else becomes float32.
    """
    xp_x = chainer.backend.get_array_module(x)
    x = xp_x.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError('expected one image of shape (C, H, W) or (1, C, H, W), got shape {}'
                         .format(tuple(x.shape)))
    if x.dtype.kind != 'f':
        x = x.astype(numpy.float32)
    return model.device.send(x)


def channel_max_abs(g):
    """Per pixel, the largest absolute value over the channel axis (axis -3) of ``g``."""
    xp = chainer.backend.get_array_module(g)
    return xp.abs(g).max(axis=-3)


#: The output to differentiate by default: the sum of all outputs (the thesis's saliency).
SUM = 'sum'


def output_index(output, types):
    """The column of ``output`` among ``types`` (a counter's ``settings['types']``), or None for
    :data:`SUM` / None (the sum of the outputs). ValueError for a name not in ``types``."""
    if output is None or output == SUM:
        return None
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < len(types):
            raise ValueError('output {} is out of range for {} outputs'.format(output, len(types)))
        return output
    if output not in types:
        raise ValueError('output {!r}: the counter\'s outputs are {} (or {!r}, their sum)'.format(
            output, ', '.join(types), SUM))
    return list(types).index(output)


def differentiated(outputs, output=None):
    """The scalar whose gradient is the saliency: the sum of ``outputs`` (B, n) over the batch
    and, for ``output`` None, over the types; else of column ``output`` alone."""
    if output is None:
        return F.sum(outputs)
    return F.sum(outputs[:, int(output)])


def input_gradient(model, x, enable_double_backprop=False, output=None):
    """Run ``model`` on the batch ``x`` and return ``(x_var, outputs, g)``.

    ``g = d sum(outputs) / d x`` (a Variable, shape of ``x``), or with ``output`` (a column
    index) ``d outputs[:, output] / d x``. Every image of the batch only feeds its own outputs in
    test mode, so ``g[i]`` is image ``i``'s own gradient. With ``enable_double_backprop`` the
    graph of ``g`` is kept so ``g`` can be differentiated again.
    """
    x_var = chainer.Variable(x)
    with chainer.using_config('train', False), chainer.using_config('enable_backprop', True):
        outputs = model(x_var)
        g, = chainer.grad([differentiated(outputs, output)], [x_var],
                          enable_double_backprop=enable_double_backprop)
    if g is None:  # the outputs do not depend on the image at all
        g = chainer.Variable(model.xp.zeros_like(x))
    return x_var, outputs, g


def saliency_array(model, x, output=None):
    """The saliency map on the model's device, in the input's dtype, shape ``(H, W)``."""
    _, _, g = input_gradient(model, as_batch(model, x), output=output)
    return channel_max_abs(g.array[0])


def saliency_map(model, x, output=None):
    """Saliency map of one image: ``max_c |d sum(model(x)) / d x[c]|``.

    Args:
        model: a Link mapping ``(B, C, H, W)`` images to ``(B, n)`` counts.
        x: one image ``(C, H, W)`` or ``(1, C, H, W)``, NumPy or CuPy, raw 0..255 values.
        output: None (default, the thesis's: the sum of the outputs) or the column of the one
            output to differentiate (:func:`output_index`).

    Returns:
        numpy.ndarray: float32 ``(H, W)``.
    """
    sal = saliency_array(model, x, output)
    return numpy.asarray(chainer.backend.CpuDevice().send(sal), dtype=numpy.float32)


def saliency_picture(sal, root=10):
    """The thesis's picture of a saliency map: ``round(255 * s / max(s))``, ``s = sal^(1/root)``.

    Returns a uint8 ``(H, W)`` array (all zeros for an all-zero map). Raises ValueError for
    negative or non-finite values (a network whose derivative overflowed).
    """
    sal = numpy.asarray(chainer.backend.CpuDevice().send(sal), dtype=numpy.float64)
    if not numpy.all(numpy.isfinite(sal)):
        raise ValueError('the saliency map holds non-finite values (the network\'s derivative '
                         'overflowed)')
    if sal.size and sal.min() < 0:
        raise ValueError('a saliency map cannot be negative')
    s = sal ** (1.0 / root)
    top = s.max() if s.size else 0.0
    if top == 0:
        return numpy.zeros(sal.shape, dtype=numpy.uint8)
    return numpy.rint(s / top * 255.0).astype(numpy.uint8)


# ---------------------------------------------------------------------------------------------
# Files

def save_png(path, array):
    """Write a uint8 ``(H, W)`` (grayscale) or ``(H, W, 3)`` (RGB) array as a PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(numpy.ascontiguousarray(array, dtype=numpy.uint8)).save(tmp, format='PNG')


def load_image(path):
    """Read an image file as float32 ``(3, H, W)``, raw 0..255 values (ValueError if unreadable)."""
    try:
        with Image.open(path) as im:
            array = numpy.asarray(im.convert('RGB'), dtype=numpy.float32)
    except FileNotFoundError:
        raise ValueError('image {} does not exist'.format(path)) from None
    except OSError as e:
        raise ValueError('image {} cannot be read ({})'.format(path, e)) from None
    return numpy.ascontiguousarray(array.transpose(2, 0, 1))


def image_to_rgb(x):
    """A ``(3, H, W)`` 0..255 float image as a uint8 ``(H, W, 3)`` array for Pillow."""
    x = numpy.asarray(chainer.backend.CpuDevice().send(x))
    return numpy.clip(numpy.rint(x), 0, 255).astype(numpy.uint8).transpose(1, 2, 0)


def stem(name):
    """The image name without folders and extension: ``0000.png`` -> ``0000``."""
    return os.path.splitext(os.path.basename(name))[0]


# ---------------------------------------------------------------------------------------------
# Command-line helpers shared with Counting.detect

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff')


def add_input_arguments(parser):
    """``--run``, ``--images``, ``--names``, ``--limit``, ``--out``, ``--device`` and
    ``--no-progress``."""
    parser.add_argument('--run', required=True,
                        help='run folder of a trained counter (settings.json and model.npz, as '
                             'written by Counting.train)')
    parser.add_argument('--images', required=True,
                        help='folder of images, e.g. a dataset written by Counting.generate')
    parser.add_argument('--names', nargs='+', default=None, metavar='NAME',
                        help='image file names inside --images (default: every image there, '
                             'sorted)')
    parser.add_argument('--limit', type=positive_int, default=None,
                        help='use at most this many images (default: all)')
    parser.add_argument('--out', required=True, help='folder to write the pictures into')
    add_device_argument(parser)
    add_progress_argument(parser)
    return parser


def check_names(parser, names, option='--names'):
    """``--names`` are file names inside ``--images``: no folder part (no image is read from
    elsewhere) and no name twice (each name's pictures are written under that name)."""
    for name in names:
        if not name or os.path.basename(name) != name or name in ('.', '..'):
            parser.error('{}: {!r} is not a file name inside --images (no folder part; the '
                         'images are read from --images only)'.format(option, name))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        parser.error('{}: {} given twice (their output files would have the same '
                     'names)'.format(option, twice[0]))


def select_images(args, parser, out_is_file=False):
    """The image names to process, checked, and ``--out`` (where the command has one) checked
    writable: a folder, or with ``out_is_file`` a file (which may exist: it is replaced);
    errors go through ``parser.error``."""
    if getattr(args, 'out', None) is not None:
        if out_is_file:
            check_out_arg(parser, args.out, is_file=True)
        else:
            lock.claim_arg(parser, args.out)  # one writer per folder
    folder = args.images
    if not os.path.isdir(folder):
        parser.error('--images {}: folder does not exist'.format(folder))
    if args.names:
        names = list(args.names)
        check_names(parser, names)
        for name in names:
            if not os.path.isfile(os.path.join(folder, name)):
                parser.error('--names: image {} does not exist'.format(os.path.join(folder, name)))
    else:
        names = sorted(n for n in os.listdir(folder)
                       if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.'))
        if not names:
            parser.error('--images {}: no image files in this folder'.format(folder))
    if args.limit is not None:
        names = names[:args.limit]
    return names


def load_run(args, parser, device):
    """Load the counter of ``--run`` onto ``device``: ``(model, settings)``; one-line errors."""
    from Counting.models import load_counter
    try:
        model, settings = load_counter(args.run)
    except (ValueError, OSError) as e:
        parser.error('--run: {}'.format(e))
    model.to_device(device)
    return model, settings


def expected_image_size(settings):
    """``(H, W)`` a counter was trained for: its settings hold ``image_size`` as
    ``[width, height]`` (as Counting.train writes it) or one int; None when absent."""
    size = settings.get('image_size')
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    width, height = size
    return int(height), int(width)


def read_checked_image(folder, name, settings):
    """Load ``folder/name`` and check that it has the run's image size (ValueError)."""
    path = os.path.join(folder, name)
    x = load_image(path)
    want = expected_image_size(settings)
    if want is not None and tuple(x.shape[1:]) != want:
        raise ValueError('image {} is {}x{} pixels but the network was trained on {}x{} images'
                         .format(path, x.shape[2], x.shape[1], want[1], want[0]))
    return x


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.saliency',
        description='Saliency maps of a trained counter (thesis 2.2.1): for each image, '
                    'max over channels of |d sum(outputs) / d image|, written as '
                    '<name>_saliency.png (tenth root, normalised to 0..255, grayscale).')
    add_input_arguments(parser)
    add_output_argument(parser)
    return parser


def add_output_argument(parser):
    """``--output sum|tri|sq``: the output whose gradient is the saliency."""
    parser.add_argument('--output', default=SUM, metavar='sum|tri|sq',
                        help='the output to differentiate: "sum" (the sum of the outputs, the '
                             'thesis\'s saliency) or one shape type\'s output, e.g. "tri" or "sq" '
                             '(default: %(default)s)')
    return parser


def checked_output(args, parser, settings):
    """``--output`` as a column index of the run's outputs (None: their sum); parser.error for a
    type the run does not count."""
    try:
        return output_index(args.output, list(settings.get('types') or ()))
    except ValueError as e:
        parser.error('--output: {}'.format(e))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.check_bounds(parser, args)  # every count-like option has an upper bound
    device = device_from_args(args, parser)
    names = select_images(args, parser)
    model, settings = load_run(args, parser, device)
    output = checked_output(args, parser, settings)
    print('saliency: run {} ({} {}), output {}, {} image(s) from {} -> {}, device {}'.format(
        args.run, settings.get('arch'), settings.get('activation'), args.output, len(names),
        args.images, args.out, device), file=sys.stderr)
    try:
        write_saliency_pictures(model, settings, args.images, names, args.out,
                                progress=args.progress, output=output)
    except ValueError as e:
        print(parser.prog + ': error: {}'.format(e), file=sys.stderr)
        return 2
    return 0


def write_saliency_pictures(model, settings, folder, names, out, progress=True, output=None):
    """Write ``<name>_saliency.png`` into ``out`` for each image (ValueError on a bad image);
    ``output``: as :func:`saliency_map`."""
    os.makedirs(out, exist_ok=True)
    with Progress(len(names), desc='saliency', unit='image', enabled=progress) as bar:
        for name in names:
            x = read_checked_image(folder, name, settings)
            picture = saliency_picture(saliency_map(model, x, output))
            save_png(os.path.join(out, stem(name) + '_saliency.png'), picture)
            bar.update()


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))

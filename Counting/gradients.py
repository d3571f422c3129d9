"""Saliency maps of a counter (thesis 2.1.5 and 2.2.1, after Simonyan, Vedaldi and Zisserman):
the input gradients that ``Counting.saliency`` pictures and :mod:`Counting.detection`
differentiates again.

The saliency of an image is the gradient of the *sum* of the counter's outputs (all shape types)
with respect to the image, reduced per pixel to the largest absolute value over the channels:
``saliency[y, x] = max_c |d sum(outputs) / d image[c, y, x]|``; with ``output`` (a column) that
one output is differentiated instead, the saliency of one shape type. Its picture is
``round(255 * s / max(s))`` with ``s = saliency ** (1/10)``: the thesis's tenth root brings the
extremes closer together so the map stays readable.

The model always runs in test mode (``chainer.config.train = False``), so Batch Renormalization
uses its running averages and every image in a batch is independent of the others.
"""
import os

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import numpy

from Counting import images
from lenses_common.progress import Progress


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


def write_saliency_pictures(model, settings, folder, names, out, progress=True, output=None):
    """Write ``<name>_saliency.png`` into ``out`` for each image (ValueError on a bad image);
    ``output``: as :func:`saliency_map`."""
    os.makedirs(out, exist_ok=True)
    with Progress(len(names), desc='saliency', unit='image', enabled=progress) as bar:
        for name in names:
            x = images.read_checked_image(folder, name, settings)
            picture = saliency_picture(saliency_map(model, x, output))
            images.save_png(os.path.join(out, images.stem(name) + '_saliency.png'), picture)
            bar.update()

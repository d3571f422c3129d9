"""The image files of the Counting commands: reading a test image (checked against the size a
counter was trained for) and writing the pictures, atomically."""
import os

import chainer
import numpy
from PIL import Image

from lenses_common.runfolder import atomic_path

#: File endings of the images ``--images`` folders are searched for.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff')


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


def image_names(folder):
    """The image files of ``folder``, sorted (hidden files left out)."""
    return sorted(n for n in os.listdir(folder)
                  if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.'))

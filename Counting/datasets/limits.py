"""Upper bounds on the Counting scripts' sizes, and the disk and memory a generation needs.

The bounds are far above anything the thesis used (1000 x 1000 canvases, some thousands of images,
at most 20 shapes) and stop a typo such as ``--count 1000000000000`` before it fills the disk or
memory. :func:`check_generation` estimates what a dataset will take, from the sizes of a few
images rendered and encoded in memory first, and refuses a generation that does not fit.
"""
from lenses_common.runfolder import free_disk

MAX_COUNT = 1000000          # images per dataset
MAX_IMAGE_SIDE = 10000       # pixels per side
MAX_SHAPES = 1000            # --shape-limit: shapes per image
MAX_SCALE = MAX_IMAGE_SIDE   # shape size in pixels
MAX_DETECT_COUNT = 1000      # Counting.detect --count: groups per image
MAX_WORKERS = 256

#: Bytes of working memory per pixel in one generating process: the uint8 mask, the PNG rows
#: (3 bytes per pixel plus one per row), the compressed output (at most about the raw size) and
#: the rasterizer's temporaries; measured peak is below this.
BYTES_PER_PIXEL_WORKING = 16
#: JSON bytes per image and per shape in truths.json and annotations.json, generous.
JSON_BYTES_PER_IMAGE = 200
JSON_BYTES_PER_SHAPE = 400
#: Images rendered in memory first to measure the PNG size.
SAMPLES = 3
#: Margin on the measured PNG size (the samples may hold fewer shapes than average).
DISK_MARGIN = 1.5


def bounds_text():
    return ('images per dataset <= {:,}, image side <= {:,} px, shapes per image <= {:,}'.format(
        MAX_COUNT, MAX_IMAGE_SIDE, MAX_SHAPES))


def check_bounds(count, width, height, shape_limit, scale_hi=None, workers=1):
    """Raise ValueError naming the option when a size is above its bound."""
    if count > MAX_COUNT:
        raise ValueError('--count {} is above the limit of {:,} images per dataset'.format(
            count, MAX_COUNT))
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ValueError('--image-size {} {} is above the limit of {:,} pixels per side'.format(
            width, height, MAX_IMAGE_SIDE))
    if shape_limit > MAX_SHAPES:
        raise ValueError('--shape-limit {} is above the limit of {:,} shapes per image'.format(
            shape_limit, MAX_SHAPES))
    if scale_hi is not None and scale_hi > MAX_SCALE:
        raise ValueError('--scale {} is above the limit of {:,} pixels'.format(scale_hi,
                                                                              MAX_SCALE))
    if workers > MAX_WORKERS:
        raise ValueError('--workers {} is above the limit of {}'.format(workers, MAX_WORKERS))


def available_memory():
    """Bytes of memory available to new allocations (MemAvailable), or None if unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate(count, width, height, shape_limit, workers, sample_png_bytes):
    """``(disk_bytes, memory_bytes)`` a generation needs, from the PNG sizes of a few samples."""
    png = max(sample_png_bytes) * DISK_MARGIN if sample_png_bytes else width * height * 3
    json_bytes = count * (JSON_BYTES_PER_IMAGE + JSON_BYTES_PER_SHAPE * shape_limit)
    disk = count * (png + 4096) + 2 * json_bytes  # a file takes at least one 4 KiB block
    # Each process holds one image at a time; the parent holds every truth and annotation and
    # writes them as JSON (the text again).
    memory = workers * width * height * BYTES_PER_PIXEL_WORKING + 3 * json_bytes
    return int(disk), int(memory)


def _human(n):
    for unit in ('B', 'KB', 'MB', 'GB', 'TB', 'PB'):
        if n < 1000 or unit == 'PB':
            return '{:.1f} {}'.format(n, unit) if unit != 'B' else '{} B'.format(int(n))
        n /= 1000.0


def check_generation(out_dir, count, width, height, shape_limit, workers, sample_png_bytes,
                     free=None, memory=None):
    """Raise ValueError when the estimate exceeds the free disk under ``out_dir`` or the available
    memory; returns ``(disk_bytes, memory_bytes)``."""
    disk, mem = estimate(count, width, height, shape_limit, workers, sample_png_bytes)
    free = free_disk(out_dir) if free is None else free
    if disk > free:
        raise ValueError('{} images of {}x{} need about {} of disk but {} has {} free'.format(
            count, width, height, _human(disk), out_dir, _human(free)))
    memory = available_memory() if memory is None else memory
    if memory is not None and mem > memory:
        raise ValueError('{} images of {}x{} with {} worker(s) need about {} of memory but {} '
                         'is available (use fewer --workers or smaller images)'.format(
                             count, width, height, workers, _human(mem), _human(memory)))
    return disk, mem

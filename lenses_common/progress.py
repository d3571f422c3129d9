"""Progress bars for work outside Chainer's Trainer (generation, evaluation, saliency, detection,
attacks), drawn by tqdm.

On a terminal, tqdm draws the bar on standard error. When standard error is not a terminal (a log
file, CI), a stage prints one line when it ends instead of a bar. ``enabled=False`` (the scripts'
``--no-progress``) prints nothing. Inside the Trainer, Chainer's ``ProgressBar`` extension does
this job.
"""
import sys
import time

from tqdm import tqdm


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A tqdm bar of ``total`` steps on ``stream`` (stderr), or one line at :meth:`close`."""

    def __init__(self, total, desc='', unit='it', enabled=True, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = 0
        self._line = enabled and not _is_terminal(self.stream)
        self._start = time.perf_counter()
        self._bar = tqdm(total=self.total, desc=desc or None, unit=unit, file=self.stream,
                         disable=not enabled or self._line, dynamic_ncols=True)
        self._closed = False

    def update(self, n=1):
        self.done += n
        self._bar.update(n)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._bar.close()
        if self._line:
            print('{}{}/{} {} in {:.1f} s'.format(self.desc + ': ' if self.desc else '', self.done,
                                                  self.total, self.unit,
                                                  time.perf_counter() - self._start),
                  file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def add_progress_argument(parser):
    """``--no-progress`` (``args.progress`` False): no bars and no stage lines."""
    parser.add_argument('--no-progress', dest='progress', action='store_false',
                        help='no progress bars (tqdm on a terminal; otherwise one line per '
                             'stage on standard error)')

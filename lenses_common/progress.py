"""A dependency-free progress bar for work outside Chainer's Trainer (generation, evaluation)."""
import sys
import time


class Progress:
    """Print ``desc: done/total [bar] rate, ETA`` to stderr, at most every ``interval`` seconds."""

    def __init__(self, total, desc='', unit='it', stream=None, interval=0.5, width=30):
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, n=1):
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now):
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(self.width * frac))
        eta = (self.total - self.done) / rate if rate > 0 else float('inf')
        self.stream.write('\r{}{}/{} [{}{}] {:.1f} {}/s, ETA {:.0f}s   '.format(
            self.desc + ': ' if self.desc else '', self.done, self.total, '#' * filled,
            '.' * (self.width - filled), rate, self.unit, eta if eta != float('inf') else 0))
        self.stream.flush()

    def close(self):
        self._draw(time.perf_counter())
        self.stream.write('\n')
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(iterable, total=None, desc='', unit='it'):
    """Wrap an iterable with a :class:`Progress` bar."""
    if total is None:
        total = len(iterable)
    with Progress(total, desc=desc, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update()

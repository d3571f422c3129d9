"""Command lines whose errors are one line.

argparse prints its whole usage block before an error; a mistyped option then buries the one
line that says what is wrong. :class:`ArgumentParser` prints only ``prog: error: message`` and
exits with status 2, as every other bad input of this project does; ``-h`` still shows the full
usage and help.

A script started as ``python -m Package.script`` is named so in its usage line and its errors
(argparse alone would say ``script.py``), unless the parser is given a ``prog``.
"""
import argparse
import sys

#: The packages whose modules are command lines run with ``python -m``.
PACKAGES = ('Counting', 'Friendly', 'lenses_common')


def module_prog():
    """``'python -m NAME'`` when the running program is a module of this project, else None."""
    spec = getattr(sys.modules.get('__main__'), '__spec__', None)
    name = getattr(spec, 'name', None) or ''
    if name.endswith('.__main__'):
        name = name[:-len('.__main__')]
    if name.split('.')[0] in PACKAGES:
        return 'python -m ' + name
    return None


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose :meth:`error` is one line on stderr and exit status 2."""

    def __init__(self, *args, **kwargs):
        if not args and kwargs.get('prog') is None:
            kwargs['prog'] = module_prog()
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, '{}: error: {}\n'.format(self.prog, message))


#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130
#: Exit status of a command stopped by a failed write (a full disk, a removed folder).
EXIT_WRITE = 1
#: Exit status of a training stopped because its loss or a parameter became non-finite (both
#: parts; 1 is a failed write, 2 bad input, 130 Ctrl-C).
EXIT_NONFINITE = 3


def add_resume_argument(parser):
    """The one ``--resume`` of every training command: ``--resume`` alone (or ``--resume auto``)
    continues from the newest ``snapshot_epoch_*`` in ``--out``, ``--resume PATH`` from that
    snapshot file."""
    parser.add_argument('--resume', '-r', nargs='?', const='auto', default=None,
                        metavar='SNAPSHOT',
                        help='resume an interrupted run: with no value (or "auto") from the newest '
                             'snapshot_epoch_* in --out, else from the snapshot file SNAPSHOT')


def fail(parser, message, status=2):
    """Exit with ``status`` and one line ``PROG: error: MESSAGE`` (no usage lines): the one error
    prefix of every script."""
    parser.exit(status, '{}: error: {}\n'.format(parser.prog, str(message).strip()))


def _prog(argv0=None):
    import os
    import sys
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name:
        return 'python -m {}'.format(spec.name)
    return os.path.basename(argv0 or sys.argv[0])


def main_guard(main, *args, prog=None):
    """Run ``main(*args)`` and return its exit status, turning the two failures that can strike
    anywhere into one line on stderr: Ctrl-C (``PROG: interrupted``, status 130; every file is
    written through a temporary name, so nothing is left half-written) and an ``OSError`` from a
    write (``PROG: error: cannot write FILE (reason)``, status 1). A script's ``__main__`` is
    ``sys.exit(cli.main_guard(main))``."""
    import sys
    prog = prog or _prog()
    try:
        code = main(*args)
    except KeyboardInterrupt:
        print('{}: interrupted; nothing half-written is left (files are written under a '
              'temporary name and renamed when complete)'.format(prog), file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        from lenses_common.runfolder import WriteError
        if isinstance(e, WriteError):
            text = str(e)
        elif getattr(e, 'filename', None):
            text = '{} ({})'.format(e.filename, e.strerror or e)
        else:
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
        print('{}: error: {}'.format(prog, text), file=sys.stderr)
        return EXIT_WRITE
    if code is None or isinstance(code, (dict, list, tuple)):
        return 0
    return code


def bounded_int(low, high):
    """An argparse ``type``: an integer in ``low..high`` (every count-like option has a bound, so
    that a typo cannot run for days or fill the disk)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('{!r} is not an integer'.format(text)) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError('{} is not in {}..{:,}'.format(value, low, high))
        return value
    parse.__name__ = 'integer'
    return parse


def positive_int(text):
    """An argparse ``type``: an integer above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('{!r} is not an integer'.format(text)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError('{} is not a positive integer'.format(text))
    return value


def finite_float(low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type``: a finite float, at least ``low`` (above it with ``low_open``) and at
    most ``high`` (below it with ``high_open``)."""
    import math

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError('{!r} is not a number'.format(text)) from None
        if low == 0 and low_open and high is None and not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError('{} is not a positive finite number'.format(text))
        if not math.isfinite(value) or (low is not None and (value <= low if low_open
                                                             else value < low)) \
                or (high is not None and (value >= high if high_open else value > high)):
            raise argparse.ArgumentTypeError('{} is not a finite number{}{}'.format(
                text, '' if low is None else (' > {:g}'.format(low) if low_open
                                              else ' >= {:g}'.format(low)),
                '' if high is None else '{} {} {:g}'.format(
                    ' and' if low is not None else '', '<' if high_open else '<=', high)))
        return value
    parse.__name__ = 'number'
    return parse


def non_negative_number(text):
    """An argparse ``type``: a number >= 0, infinity included (a threshold that is never met)."""
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('{!r} is not a number'.format(text)) from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError('{} is not a number >= 0'.format(text))
    return value


#: Upper bounds of the count-like options, far above any use (the thesis trains for at most 100
#: epochs on 60,000 images): a typo such as ``--epoch 1e9`` is refused instead of running for ever.
MAX_EPOCHS = 100000
MAX_BATCH = 1000000
MAX_STEPS = 1000000
MAX_RESTARTS = 10000
MAX_IMAGES = 10000000
MAX_ATTEMPTS = 10000000
#: Option (argparse dest) -> bound, used by :func:`check_bounds`.
BOUNDS = {
    'epoch': MAX_EPOCHS, 'patience': MAX_EPOCHS, 'snapshot_interval': MAX_EPOCHS,
    'renorm_step_epochs': MAX_EPOCHS, 'eval_interval': MAX_EPOCHS,
    'batchsize': MAX_BATCH, 'eval_batchsize': MAX_BATCH, 'pd_chunk_size': MAX_BATCH,
    'pgd_steps': MAX_STEPS, 'pgd_restarts': MAX_RESTARTS, 'max_attempts': MAX_ATTEMPTS,
    'train_subset': MAX_IMAGES, 'val_subset': MAX_IMAGES, 'test_subset': MAX_IMAGES,
    'curve_subset': MAX_IMAGES, 'limit': MAX_IMAGES, 'pictures': MAX_IMAGES,
}


def check_bounds(parser, args, names=None):
    """One-line error for a count-like option of ``args`` above its :data:`BOUNDS` bound
    (``names``: the dests to check; default every one ``args`` has)."""
    for name in (names or BOUNDS):
        value = getattr(args, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > BOUNDS[name]:
            fail(parser, '--{} {} is above the limit of {:,}'.format(
                name.replace('_', '-'), value, BOUNDS[name]))


def ignore_sigint():
    """Initializer of worker processes: Ctrl-C goes to the whole process group, and the parent
    alone reports it (one line, :func:`main_guard`) and ends the workers; without this every
    worker would print its own ``KeyboardInterrupt`` traceback. On Linux a worker also ends with
    its parent (``PR_SET_PDEATHSIG``), so a killed command leaves no worker writing on."""
    import signal
    import sys
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith('linux'):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

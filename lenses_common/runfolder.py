"""Run folders: settings JSON and command line at start, atomic saves of models and results."""
import contextlib
import datetime
import json
import os
import shlex
import sys
import tempfile

import numpy


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception leaves any earlier file at ``path`` untouched and no partial file.
    ``suffix`` keeps an extension on the temporary name for writers that look at it (``.npz``).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                               suffix='.tmp' + suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode('utf-8'))


def _jsonable(value):
    if isinstance(value, (numpy.integer,)):
        return int(value)
    if isinstance(value, (numpy.floating,)):
        return float(value)
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    return str(value)


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + '\n')


def save_npz(path, target):
    """``chainer.serializers.save_npz`` through a temporary file, so ``path`` is never partial."""
    import chainer
    with atomic_path(path, suffix='.npz') as tmp:
        chainer.serializers.save_npz(tmp, target)


def load_json(path, what='settings file'):
    """Read a JSON file, turning a missing or malformed file into a one-line ``ValueError``."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError('{} {} does not exist'.format(what, path)) from None
    except json.JSONDecodeError as e:
        raise ValueError('{} {} is not valid JSON ({})'.format(what, path, e)) from None


class RunFolder:
    """A folder for one run: ``settings.json`` and ``command.txt`` are written when it is opened.

    ``settings`` is a dict (or an ``argparse.Namespace``). A resumed run (``resume=True``) keeps the
    first ``settings.json`` and appends the new command line, so the folder records every
    invocation that wrote into it.
    """

    SETTINGS = 'settings.json'
    COMMAND = 'command.txt'

    def __init__(self, path, settings, resume=False, argv=None):
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        if not isinstance(settings, dict):
            settings = dict(vars(settings))
        self.settings = settings
        argv = sys.argv if argv is None else argv
        command = ' '.join(shlex.quote(a) for a in argv)
        stamp = datetime.datetime.now().isoformat(timespec='seconds')
        settings_path = self.file(self.SETTINGS)
        if not (resume and os.path.exists(settings_path)):
            atomic_write_json(settings_path, settings)
        previous = ''
        if resume and os.path.exists(self.file(self.COMMAND)):
            with open(self.file(self.COMMAND)) as f:
                previous = f.read()
        atomic_write_text(self.file(self.COMMAND),
                          previous + '# {} (cwd {})\n{}\n'.format(stamp, os.getcwd(), command))

    def file(self, *names):
        return os.path.join(self.path, *names)

    def save_model(self, name, target):
        save_npz(self.file(name), target)

    def save_json(self, name, obj):
        atomic_write_json(self.file(name), obj)

    def save_text(self, name, text):
        atomic_write_text(self.file(name), text)

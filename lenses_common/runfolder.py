"""Run folders: settings JSON and command line at start, atomic saves of models and results."""
import contextlib
import datetime
import errno
import json
import math
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile

import numpy

from lenses_common.environment import environment


def current_umask():
    """The process's umask, read without changing it where Linux reports it."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class WriteError(OSError):
    """A write that failed (a full disk, a removed folder); ``str()`` is one line naming the file
    that was being written (not its temporary name)."""

    def __init__(self, path, error):
        super().__init__(getattr(error, 'errno', None), getattr(error, 'strerror', None) or
                         str(error), path)
        self.path = path
        self.reason = getattr(error, 'strerror', None) or str(error)

    def __str__(self):
        return 'cannot write {} ({})'.format(self.path, self.reason)


def write_error(path, error):
    """:class:`WriteError` for ``error`` (returned as it is if it already is one)."""
    return error if isinstance(error, WriteError) else WriteError(path, error)


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or an exception leaves any earlier file at ``path`` untouched and no partial file.
    ``suffix`` keeps an extension on the temporary name for writers that look at it (``.npz``).
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        # A rename would put a file in place of a folder, a device or a FIFO.
        raise WriteError(path, OSError(errno.EEXIST, 'exists and is not a regular file'))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                               suffix='.tmp' + suffix, dir=directory)
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0644 under umask 022).
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(path, e) from None
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


NULL_REASON = '_null_reason'


def standard_json(obj):
    """``obj`` with every NaN or infinite float replaced by None (JSON ``null``); a dict that held
    one gains ``<key>_null_reason`` saying what it was, unless the caller gave a reason already.
    Standard JSON has no NaN or Infinity, and readers other than Python's refuse them."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(value, (float, numpy.floating)) and not math.isfinite(value):
                out[key] = None
                note = '{}{}'.format(key, NULL_REASON)
                if note not in obj:
                    out[note] = 'not a finite number ({})'.format(
                        'NaN' if value != value else ('+inf' if value > 0 else '-inf'))
            else:
                out[key] = standard_json(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [standard_json(v) for v in obj]
    if isinstance(obj, (float, numpy.floating)) and not math.isfinite(obj):
        return None
    if isinstance(obj, numpy.ndarray):
        return standard_json(obj.tolist())
    return obj


def atomic_write_json(path, obj):
    """Write ``obj`` as standard JSON (:func:`standard_json`: no NaN or Infinity)."""
    atomic_write_text(path, json.dumps(standard_json(obj), indent=2, sort_keys=True,
                                       default=_jsonable, allow_nan=False) + '\n')


def save_npz(path, target, meta=None, compression=True):
    """Save ``target`` as ``chainer.serializers.save_npz`` does, through a temporary file, so
    ``path`` is never partial. ``meta`` (``{key: str}``) adds ``_meta/<key>`` text entries, which
    :func:`lenses_common.safe_npz.load_npz` returns and Chainer's loader ignores."""
    import chainer
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(target)
    arrays = dict(serializer.target)
    for key, value in (meta or {}).items():
        arrays['_meta/' + key] = numpy.array(str(value))
    with atomic_path(path, suffix='.npz') as tmp:
        with open(tmp, 'wb') as f:
            (numpy.savez_compressed if compression else numpy.savez)(f, **arrays)


class OutError(ValueError):
    """An output path that cannot be used; the message is one line naming it."""


def check_out_dir(path, option='--out'):
    """Check, before any work, that the folder ``path`` exists and is writable or can be created.

    Nothing is created: the nearest existing folder is probed with a temporary file. Raises
    :class:`OutError` with a one-line message naming ``option`` and ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    check_name_lengths(path, option)
    if os.path.islink(path) and not os.path.exists(path):
        raise OutError('{} {}: is a symbolic link to {}, which does not exist'.format(
            option, path, os.readlink(path)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutError('{} {}: exists and is not a folder'.format(option, path))
    probe = nearest_existing(path)
    if not os.path.isdir(probe):
        raise OutError('{} {}: cannot be created, {} is not a folder'.format(option, path, probe))
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise OutError('{} {}: {} is not writable ({})'.format(
            option, path, probe, e.strerror or e)) from None
    return path


def nearest_existing(path, exists=os.path.exists):
    """``path`` (absolute) or its nearest parent for which ``exists`` holds (the root at most)."""
    probe = os.path.abspath(path)
    while not exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def name_max(path):
    """The longest file name (bytes) the file system holding ``path`` allows (255 if unknown)."""
    probe = nearest_existing(path, os.path.isdir)
    try:
        return int(os.pathconf(probe, 'PC_NAME_MAX'))
    except (OSError, ValueError):
        return 255


def check_name_lengths(path, option='--out'):
    """:class:`OutError` when a component of ``path`` is longer than the file system allows."""
    limit = name_max(path)
    for part in os.path.abspath(path).split(os.sep):
        if len(os.fsencode(part)) > limit:
            raise OutError('{} {}...: the name {}... is {} bytes long, above the limit of {} '
                           'bytes'.format(option, path[:60], part[:24],
                                          len(os.fsencode(part)), limit))


def check_regular_file(path, what='file'):
    """Raise ``ValueError`` (one line) unless ``path`` is a regular file: a FIFO, a device or a
    folder in place of an input would block or fail in the middle of the work."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError('{} {} does not exist'.format(what, path)) from None
    except OSError as e:
        raise ValueError('{} {} cannot be read ({})'.format(what, path, e.strerror or e)) \
            from None
    if not stat.S_ISREG(mode):
        kind = ('a folder' if stat.S_ISDIR(mode) else 'a FIFO' if stat.S_ISFIFO(mode)
                else 'a socket' if stat.S_ISSOCK(mode) else 'a device')
        raise ValueError('{} {} is {}, not a regular file'.format(what, path, kind))
    return path


#: What a killed write leaves: a hidden temporary file of :func:`atomic_path`
#: (``.NAME.XXXXXXXX.tmp[.EXT]``) and a folder of Chainer's snapshot writers (``tmpNAME*``
#: holding the snapshot or model file being written).
_LEFTOVER_FILE = re.compile(r'^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$')
_LEFTOVER_DIR = re.compile(r'^tmp(snapshot_|model).*')


def leftovers(folder):
    """The leftovers of killed writes directly in ``folder`` (see ``_LEFTOVER_FILE``/``_DIR``)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and _LEFTOVER_FILE.match(entry.name):
            found.append(entry.path)
        elif entry.is_dir(follow_symlinks=False) and _LEFTOVER_DIR.match(entry.name):
            found.append(entry.path)
    return sorted(found)


def remove_leftovers(folder):
    """Remove :func:`leftovers` of ``folder``; call it only while holding the folder's lock
    (:mod:`lenses_common.lock`), when no other writer can be using them. Returns what went."""
    removed = []
    for path in leftovers(folder):
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def free_disk(path):
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(nearest_existing(path)).free


def check_free_space(path, needed, what, option='--out'):
    """:class:`OutError` when the disk holding ``path`` has less than ``needed`` bytes free."""
    free = free_disk(path)
    if free < needed:
        raise OutError('{} {}: {} need about {:.1f} MB of disk but only {:.1f} MB are free'.format(
            option, path, what, needed / 1e6, free / 1e6))


def check_out_arg(parser, path, option='--out', is_file=False):
    """:func:`check_out_dir` for a command line: a bad ``path`` exits through
    :func:`lenses_common.cli.fail` (one line, status 2). ``is_file``: ``path`` names a file,
    whose folder is checked. ``None`` (no such output asked for) passes."""
    if path is None:
        return None
    try:
        if is_file:
            if os.path.isdir(path):
                raise OutError('{} {}: is a folder, not a file'.format(option, path))
            if os.path.exists(path) and not os.path.isfile(path):
                raise OutError('{} {}: exists and is not a regular file (a device or a '
                               'FIFO)'.format(option, path))
            check_name_lengths(path, option)
            check_out_dir(os.path.dirname(os.path.abspath(path)), option)
            return os.path.abspath(path)
        return check_out_dir(path, option)
    except OutError as e:
        from lenses_common import cli
        cli.fail(parser, e)


def move_aside(path):
    """Rename ``path`` to the first free ``<path>.old-N``; return the new name (never deletes)."""
    path = os.path.normpath(os.fspath(path))
    n = 1
    while os.path.lexists('{}.old-{}'.format(path, n)):
        n += 1
    target = '{}.old-{}'.format(path, n)
    check_name_lengths(target, '--force (moving it aside to)')
    shutil.move(path, target)
    from lenses_common import lock
    lock.release(path)  # the lock file moved with the folder
    return target


def guard_run_folder(out, finished, in_progress, resume=False, force=False, option='--out'):
    """Refuse to write a new run over an old one; return a message when ``force`` moved it aside.

    ``finished`` and ``in_progress`` are glob patterns inside ``out`` (the final model, the
    snapshots). When ``out`` holds a match and neither ``resume`` nor ``force`` is given, raise
    :class:`OutError`; with ``force`` the old folder becomes ``<out>.old-N``.
    """
    import glob
    if resume or not os.path.isdir(out):
        return None
    found = [p for pattern in tuple(finished) + tuple(in_progress)
             for p in glob.glob(os.path.join(glob.escape(out), pattern))]
    if not found:
        return None
    done = any(glob.glob(os.path.join(glob.escape(out), p)) for p in finished)
    if not force:
        raise OutError('{} {} holds {} run ({}); pass --resume to continue it or --force to '
                       'move it aside and start anew'.format(
                           option, out, 'a finished' if done else 'an unfinished',
                           os.path.basename(sorted(found)[0])))
    return 'moved the earlier run in {} aside to {}'.format(out, move_aside(out))


def load_json(path, what='settings file'):
    """Read a JSON file, turning a missing or malformed file into a one-line ``ValueError``."""
    check_regular_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError('{} {} does not exist'.format(what, path)) from None
    except json.JSONDecodeError as e:
        raise ValueError('{} {} is not valid JSON ({})'.format(what, path, e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError('{} {} cannot be read ({})'.format(what, path, e)) from None


class RunFolder:
    """A folder for one run: ``settings.json`` and ``command.txt`` are written when it is opened.

    ``settings`` is a dict (or an ``argparse.Namespace``). A resumed run (``resume=True``) keeps the
    first ``settings.json`` and appends the new command line, so the folder records every
    invocation that wrote into it. ``settings.json`` also holds, under ``"environment"``, what the
    numbers depend on beyond the settings (:func:`lenses_common.environment.environment`: CPU model,
    BLAS and its threads, versions); compare runs with that key left out.
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
            atomic_write_json(settings_path, dict(settings, environment=environment()))
        previous = ''
        if resume and os.path.exists(self.file(self.COMMAND)):
            with open(self.file(self.COMMAND)) as f:
                previous = f.read()
        atomic_write_text(self.file(self.COMMAND),
                          previous + '# {} (cwd {})\n{}\n'.format(stamp, os.getcwd(), command))

    def file(self, *names):
        return os.path.join(self.path, *names)

    def save_model(self, name, target, meta=None):
        save_npz(self.file(name), target, meta=meta)

    def save_json(self, name, obj):
        atomic_write_json(self.file(name), obj)

    def save_text(self, name, text):
        atomic_write_text(self.file(name), text)

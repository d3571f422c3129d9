"""One writer per folder: an exclusive ``fcntl.flock`` on a lock file, held until the process ends.

Every training, evaluation and generation claims its output folder with :func:`claim` before it
writes anything. A second process that claims the same folder is refused with one line naming the
holder's pid (:class:`LockError`). The lock belongs to the open file, so the kernel drops it when
the holder exits, however it exits: a lock file left by a killed process does not block the next
run (its pid is only a hint, overwritten by the next holder).

A folder that does not exist yet as a whole (a generated dataset, written into a temporary folder
and renamed when done) is claimed through a lock file beside it (:func:`claim_beside`).

Within one process a second claim of the same folder is granted (a script's ``main`` called
twice); :func:`release` gives a lock up before the process ends.
"""
import errno
import fcntl
import os

from lenses_common import cli, runfolder

LOCK_NAME = '.lock'

# realpath of the lock file -> open file object holding the lock
_HELD = {}


class LockError(runfolder.OutError):
    """The folder is being written by another process; the message is one line."""


def _holder(path):
    try:
        with open(path) as f:
            text = f.read(32).strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def acquire(lock_path, what):
    """Take the exclusive lock on ``lock_path`` (created if needed); ``what`` names the folder in
    the refusal. Returns the lock file's real path."""
    key = os.path.realpath(lock_path)
    if key in _HELD:
        return key
    try:
        f = open(lock_path, 'a+')
    except OSError as e:
        raise LockError('{}: cannot create the lock file {} ({})'.format(
            what, lock_path, e.strerror or e)) from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            pid = _holder(lock_path)
            raise LockError('{} is being written by another run ({}); wait for it to end or '
                            'choose another folder'.format(
                                what, 'pid {}'.format(pid) if pid else 'pid unknown')) from None
        raise LockError('{}: cannot lock {} ({})'.format(what, lock_path, e.strerror or e)) \
            from None
    f.seek(0)
    f.truncate()
    f.write('{}\n'.format(os.getpid()))
    f.flush()
    _HELD[key] = f
    return key


def claim(folder, option='--out', clean=True):
    """Check ``folder`` (:func:`runfolder.check_out_dir`), create it, lock it for this process and
    (``clean``) remove the leftovers of a killed write (:func:`runfolder.remove_leftovers`).

    Raises :class:`runfolder.OutError` (one line) when the folder cannot be used or another
    process holds it."""
    folder = runfolder.check_out_dir(folder, option)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise runfolder.OutError('{} {}: cannot be created ({})'.format(
            option, folder, e.strerror or e)) from None
    acquire(os.path.join(folder, LOCK_NAME), '{} {}'.format(option, folder))
    if clean:
        runfolder.remove_leftovers(folder)
    return folder


def beside_path(folder):
    """The lock file of a folder claimed from beside: ``<parent>/.<name>.lock``."""
    folder = os.path.abspath(os.fspath(folder)).rstrip(os.sep)
    return os.path.join(os.path.dirname(folder), '.{}.lock'.format(os.path.basename(folder)))


def claim_beside(folder, option='--out'):
    """Lock ``folder`` through :func:`beside_path` (its parent is created if needed)."""
    folder = runfolder.check_out_dir(folder, option)
    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise runfolder.OutError('{} {}: cannot be created ({})'.format(
            option, parent, e.strerror or e)) from None
    acquire(beside_path(folder), '{} {}'.format(option, folder))
    return folder


def held(folder):
    """Whether this process holds the lock of ``folder`` (inside or beside)."""
    return any(os.path.realpath(p) in _HELD
               for p in (os.path.join(folder, LOCK_NAME), beside_path(folder)))


def release(folder):
    """Give up this process's lock of ``folder`` (inside or beside), if held."""
    for path in (os.path.join(folder, LOCK_NAME), beside_path(folder)):
        f = _HELD.pop(os.path.realpath(path), None)
        if f is not None:
            f.close()


def release_all():
    for key in list(_HELD):
        _HELD.pop(key).close()


def claim_arg(parser, folder, option='--out', clean=True):
    """:func:`claim` for a command line: a refusal is one line and exit status 2."""
    try:
        return claim(folder, option, clean=clean)
    except runfolder.OutError as e:
        cli.fail(parser, e)

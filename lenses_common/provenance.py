"""Where a table or figure comes from: the command, the date, the machine, the device.

:func:`record` gives the JSON-ready record that a report keeps and :func:`caption` the line that a
figure or a Markdown table prints under itself, so that either says which command on which machine
(CPU model, logical CPUs, BLAS threads and kernel) made it. :func:`replace_block` puts a generated
table between two markers of a Markdown file, so that the file can be regenerated and never goes
stale.
"""
import datetime
import os
import re
import shlex
import sys

from lenses_common import environment
from lenses_common.runfolder import atomic_write_text


def record(program, argv=None, device=None):
    """``{'command', 'date', 'machine', 'device'}`` of the running program.

    ``program`` is how the user runs it (``'python -m Friendly.fidelity'``), ``argv`` its
    arguments (``sys.argv[1:]`` when None), ``device`` the Chainer device it computes on.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    threads, core = environment.blas_runtime()
    env_threads = {k: v for k, v in ((k, os.environ.get(k)) for k in
                                     environment.THREAD_VARIABLES) if v is not None}
    return {
        'command': ' '.join([program] + [shlex.quote(str(a)) for a in argv]),
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': {'cpu_model': environment.cpu_model(), 'cpu_count': os.cpu_count(),
                    'blas_threads': threads, 'blas_core': core,
                    'blas_thread_env': env_threads},
        'device': None if device is None else str(device),
    }


def machine_text(machine):
    """``'AMD EPYC, 2 logical CPUs, BLAS 1 thread (Cooperlake)'`` from a record's machine."""
    threads = machine.get('blas_threads')
    if threads is None:
        env = machine.get('blas_thread_env') or {}
        blas = 'BLAS threads {}'.format(
            ', '.join('{}={}'.format(k, v) for k, v in sorted(env.items())) or 'unknown')
    else:
        blas = 'BLAS {} thread{}'.format(threads, '' if threads == 1 else 's')
    if machine.get('blas_core'):
        blas += ' ({})'.format(machine['blas_core'])
    return '{}, {} logical CPUs, {}'.format(machine.get('cpu_model') or 'unknown CPU',
                                            machine.get('cpu_count'), blas)


def caption(rec, seeds=None):
    """One line: command, date, machine, device and, when given, the seed(s)."""
    parts = ['`{}`'.format(rec['command']), rec['date'], machine_text(rec['machine'])]
    if rec.get('device'):
        parts.append('device {}'.format(rec['device']))
    if seeds is not None:
        seeds = list(seeds)
        parts.append('seed{} {}'.format('' if len(seeds) == 1 else 's',
                                        ', '.join(str(s) for s in seeds)))
    return '; '.join(parts)


def markers(name):
    return '<!-- {}:begin -->'.format(name), '<!-- {}:end -->'.format(name)


def check_block(path, name):
    """The text of ``path`` after checking that it holds exactly one ``<!-- NAME:begin -->``
    followed by one ``<!-- NAME:end -->``; raises ``ValueError`` with a one-line message."""
    begin, end = markers(name)
    try:
        with open(path, encoding='utf-8') as f:
            old = f.read()
    except OSError as e:
        raise ValueError('cannot read {}: {}'.format(path, e.strerror or e)) from None
    counts = (old.count(begin), old.count(end))
    if counts != (1, 1) or old.index(begin) > old.index(end):
        raise ValueError('{} must hold one {} line followed by one {} line (found {} and '
                         '{})'.format(path, begin, end, *counts))
    return old


def replace_block(path, name, text):
    """Replace what lies between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``
    by ``text`` (atomically: temporary file, then rename); the markers stay.

    Raises ``ValueError`` (one line, :func:`check_block`) and leaves the file as it was when the
    markers are missing, repeated or out of order. Returns the new text.
    """
    old = check_block(path, name)
    begin, end = markers(name)
    pattern = re.compile(re.escape(begin) + '.*?' + re.escape(end), re.S)
    new = pattern.sub(lambda _: begin + '\n' + text.strip('\n') + '\n' + end, old, count=1)
    atomic_write_text(path, new)
    return new

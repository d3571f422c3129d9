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

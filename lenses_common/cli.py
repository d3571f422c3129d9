"""Command lines whose errors are one line.

argparse prints its whole usage block before an error; a mistyped option then buries the one
line that says what is wrong. :class:`ArgumentParser` prints only ``prog: error: message`` and
exits with status 2, as every other bad input of this project does (README "What bad input
gets"); ``-h`` still shows the full usage and help.
"""
import argparse


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose :meth:`error` is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, '{}: error: {}\n'.format(self.prog, message))

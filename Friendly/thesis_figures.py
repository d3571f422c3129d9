"""The thesis's own figures and the README blocks that show ours beside them.

:func:`load_thesis` reads the thesis figures (a JSON file, ``--thesis`` of
:mod:`Friendly.thesis_table` and :mod:`Friendly.fidelity`); :func:`check_readme` and
:func:`write_readme` put a table between the ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
lines of a Markdown file (``--readme``); :func:`image_text` words a count of test images.
"""
import json

from lenses_common import provenance

#: The thesis JSON's keys of one network: clean accuracy, white-box and black-box FGSM (Table 3.2,
#: 3.3), in percent.
THESIS_KEYS = ('clean', 'whitebox_fgsm', 'blackbox_fgsm')


def load_thesis(path):
    """``{network: {'clean', 'whitebox_fgsm', 'blackbox_fgsm'}}`` and the source line of the thesis
    JSON; raises ``ValueError`` with a one-line message naming ``path``."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except OSError as e:
        raise ValueError('cannot read {}: {}'.format(path, e.strerror or e)) from None
    except ValueError as e:
        raise ValueError('{} is not JSON: {}'.format(path, e)) from None
    networks = data.get('networks') if isinstance(data, dict) else None
    if not isinstance(networks, dict):
        raise ValueError('{} holds no "networks" object'.format(path))
    table = {}
    for name, figures in networks.items():
        if not isinstance(figures, dict):
            raise ValueError('{}: network {} is not an object'.format(path, name))
        table[name] = {}
        for key in THESIS_KEYS:
            value = figures.get(key)
            if value is not None and not isinstance(value, (int, float)):
                raise ValueError('{}: {}.{} is not a number: {!r}'.format(path, name, key, value))
            table[name][key] = None if value is None else float(value)
    return table, str(data.get('source', ''))


def image_text(counts, full=10000):
    """'all 10,000' or 'the first 2,000' (several counts joined by '/')."""
    counts = sorted(counts)
    if counts == [full]:
        return 'all {:,}'.format(full)
    return 'the first ' + '/'.join('{:,}'.format(n) for n in counts)


def check_readme(parser, path, marker):
    """Before any work: one-line error (``--readme``) unless ``path`` holds the ``marker`` block."""
    try:
        provenance.check_block(path, marker)
    except ValueError as e:
        parser.error('--readme: {}'.format(e))


def write_readme(parser, path, marker, block):
    """Replace the ``marker`` block of ``path`` by ``block`` (one-line error, ``--readme``)."""
    try:
        provenance.replace_block(path, marker, block)
    except ValueError as e:
        parser.error('--readme: {}'.format(e))


def thesis_arg(parser, path):
    """:func:`load_thesis` of ``--thesis``, or exit with one line."""
    try:
        return load_thesis(path)
    except ValueError as e:
        parser.error('--thesis: {}'.format(e))

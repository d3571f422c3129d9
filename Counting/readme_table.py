"""The Counting README's results tables, written from a run's ``summary.json``.

``python -m Counting.readme_table --summary results/counting/summary.json --readme
Counting/README.md``

``Counting.run_all`` writes ``summary.json`` beside ``summary.md``: the preset, the seed, the
command and machine that made it, and every counter's scores. This script puts two of the
summary's tables (every counter side by side: counting error, outline measure, recall of every
detection method; and the typed methods' per-type recall and type accuracy), under one line
of provenance, between the ``<!-- counting-results:begin -->`` and ``<!-- counting-results:end
-->`` lines of the README, so that the README's figures are the run's and cannot go stale.
"""
import sys

from lenses_common import cli
from lenses_common import provenance
from lenses_common.runfolder import load_json
from Counting.run_summary import side_by_side_markdown, typed_markdown

MARKER = 'counting-results'


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Counting.readme_table',
        description='Put the side-by-side and typed-detection tables of a Counting.run_all '
                    'summary.json, with the command, date and machine that made it, between '
                    'the <!-- {0}:begin --> and <!-- {0}:end --> lines of a '
                    'README.'.format(MARKER))
    parser.add_argument('--summary', required=True, metavar='JSON',
                        help='summary.json of Counting.run_all (<out>/counting/summary.json, '
                             'or <out>/counting/seed-S/summary.json of a sweep)')
    parser.add_argument('--readme', required=True, metavar='FILE',
                        help='the Markdown file whose {} block is replaced'.format(MARKER))
    return parser


def block(summary, source):
    """The Markdown between the markers: provenance, then the two tables."""
    rec = summary.get('provenance')
    if not isinstance(rec, dict) or not isinstance(summary.get('counters'), list):
        raise ValueError('{} has no provenance record or no counters: is it a summary.json of '
                         'Counting.run_all?'.format(source))
    head = ['Written by `python -m Counting.readme_table` from the `summary.json` of: {} '
            '(preset `{}`; that call took {:.0f} s wall, trainings it found done not '
            'included).'.format(provenance.caption(rec, seeds=[summary.get('seed')]),
                                summary.get('preset'), float(summary.get('elapsed_s') or 0)),
            '']
    # The typed table keeps the typed methods (summary.md also has the untyped ones' per-type
    # recall), and the summary's sections become subsections of the README's results.
    typed = [dict(c, detection_methods={k: v for k, v in c['detection_methods'].items()
                                        if k.endswith('_typed')})
             for c in summary['counters'] if isinstance(c.get('detection_methods'), dict)]
    tables = ['#' + line if line.startswith('## ') else line
              for line in side_by_side_markdown(summary['counters']) + typed_markdown(typed)]
    if not tables:
        raise ValueError('{} holds no scored counter'.format(source))
    return '\n'.join(head + tables)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        provenance.check_block(args.readme, MARKER)
    except ValueError as e:
        parser.error('--readme: {}'.format(e))
    try:
        summary = load_json(args.summary, 'summary')
        if not isinstance(summary, dict):
            raise ValueError('summary {} is not a JSON object'.format(args.summary))
        text = block(summary, args.summary)
    except ValueError as e:
        parser.error('--summary: {}'.format(e))
    provenance.replace_block(args.readme, MARKER, text)
    print('wrote the {} block of {}'.format(MARKER, args.readme))
    return 0


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))

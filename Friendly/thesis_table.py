"""The thesis's Tables 3.2 and 3.3 beside ours, over seeds, written from ``results.csv``.

``python -m Friendly.thesis_table --results OUT/friendly/results.csv [more.csv ...]
--thesis thesis_tables.json --out thesis_table.md [--readme README.md]``

Every ``results.csv`` is the one ``Friendly.run_all`` writes (one row per seed and network;
columns ``seed``, ``network``, ``clean_pct``, ``fgsm_white_pct``, ``fgsm_black_pct``); several
files (say one per seed folder) are read as one set of rows, and a (seed, network) pair that
comes twice is refused. For every network and column (clean, white-box FGSM, black-box FGSM) the
table gives the thesis's figure and ours as mean ± sample standard deviation over the seeds, with
min–max and n, and whether the thesis's figure lies inside our min–max widened by
:data:`WIDEN` point on either side. A network the thesis JSON does not give (PD, held back until
measured) reads "not given". With ``--readme FILE`` the table also replaces what lies between the
``<!-- thesis-table:begin -->`` and ``<!-- thesis-table:end -->`` lines of that file.
"""
import sys

from Friendly.thesis_summary import MARKER, format_table, read_results, summarise, test_images
from Friendly.thesis_summary import training_machines
from Friendly.thesis_figures import check_readme, thesis_arg, write_readme
from lenses_common import cli
from lenses_common import provenance
from lenses_common.runfolder import atomic_write_text, check_out_arg


def build_parser():
    parser = cli.ArgumentParser(
        prog='python -m Friendly.thesis_table',
        description='The thesis\'s Tables 3.2 and 3.3 beside ours over seeds, from '
                    'Friendly.run_all\'s results.csv files and the thesis figures (JSON).')
    parser.add_argument('--results', nargs='+', required=True, metavar='CSV',
                        help='results.csv files of Friendly.run_all (one or several, e.g. one '
                             'per seed folder); a (seed, network) pair may come only once')
    parser.add_argument('--thesis', required=True, metavar='JSON',
                        help='the thesis figures: {"networks": {NAME: {"clean", '
                             '"whitebox_fgsm", "blackbox_fgsm"}}}')
    parser.add_argument('--out', '-o', required=True, metavar='FILE.md',
                        help='the Markdown file to write (replaced if it exists)')
    parser.add_argument('--readme', metavar='FILE',
                        help='also put the table between the <!-- thesis-table:begin --> and '
                             '<!-- thesis-table:end --> lines of FILE (default: no such file)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_out_arg(parser, args.out, is_file=True)
    if args.readme:
        check_readme(parser, args.readme, MARKER)
    thesis, source = thesis_arg(parser, args.thesis)
    try:
        rows = read_results(args.results)
    except ValueError as e:
        parser.error('--results: {}'.format(e))
    if not rows:
        parser.error('--results: {} hold no rows'.format(', '.join(args.results)))
    summary = summarise(rows, thesis)
    rec = provenance.record('python -m Friendly.thesis_table',
                            argv if argv is not None else sys.argv[1:])
    block = format_table(summary, rec, source, training_machines(args.results, summary, rows),
                         test_images(args.results, rows))
    atomic_write_text(args.out, '# Friendly: the thesis\'s figures beside ours\n\n' + block)
    if args.readme:
        write_readme(parser, args.readme, MARKER, block)
    print(block)
    return summary


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))

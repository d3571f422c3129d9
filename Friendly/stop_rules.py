"""When would early stopping have stopped? ``python -m Friendly.stop_rules RUN_DIR ...``

Replays Chainer's EarlyStoppingTrigger (best so far, a counter of epochs without a strictly
better value, stop when it reaches the patience, or at the epoch ceiling) on the per-epoch
training loss (``main/loss``, penalty included) and validation loss (``validation/main/loss``) of
each run's ``log``, so the two rules of ``Friendly.train --early-stop-on`` can be compared on one
run: a run that neither rule stops before its last epoch ends with the same final model either way.
"""
import sys
import math
import os
from lenses_common import cli
from lenses_common.runfolder import load_json

KEYS = (('training', 'main/loss'), ('validation', 'validation/main/loss'))


def stop_epoch(values, patience, max_epochs):
    """The epoch (1-based) at whose end the trigger stops, or None if ``values`` end before it."""
    best, count = math.inf, 0
    for epoch, value in enumerate(values, 1):
        if epoch >= max_epochs:
            return epoch
        if value < best:
            best, count = value, 0
        else:
            count += 1
        if count >= patience:
            return epoch
    return None


def log_values(log, key, run):
    """The finite numbers logged under ``key``, epoch by epoch; ValueError for anything else."""
    if not isinstance(log, list) or not all(isinstance(e, dict) for e in log):
        raise ValueError('{}: the log is not a list of epoch entries'.format(
            os.path.join(run, 'log')))
    values = []
    for epoch, entry in enumerate(log, 1):
        if key in entry:
            value = entry[key]
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not math.isfinite(value)):
                raise ValueError('{}: entry {} has {} = {!r}, not a finite number'.format(
                    os.path.join(run, 'log'), epoch, key, value))
            values.append(value)
    return values


def positive(settings, key):
    value = settings.get(key) if isinstance(settings, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError('settings.json: {} is {!r}, not a positive integer'.format(key, value))
    return value


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', metavar='RUN_DIR', help='Friendly.train run folders')
    args = parser.parse_args(argv)
    print('| run | epochs in log | rule used | stops on training loss | stops on validation '
          'loss | same final model |')
    print('| --- | ---: | --- | ---: | ---: | --- |')
    rows = []
    for run in args.runs:
        try:
            log = load_json(os.path.join(run, 'log'), what='log')
            settings = load_json(os.path.join(run, 'settings.json'))
            stops = {}
            for rule, key in KEYS:
                stops[rule] = stop_epoch(log_values(log, key, run), positive(settings, 'patience'),
                                         positive(settings, 'epoch'))
        except ValueError as e:
            parser.exit(2, parser.prog + ': error: {}: {}\n'.format(run, e))
        used = settings.get('early_stop_on', 'validation')
        known = [s for s in stops.values() if s is not None]
        # one rule stopping within the log while the other does not is a different final model
        same = {0: 'not yet known', 1: 'no'}.get(len(known), 'yes' if len(set(known)) == 1
                                                  else 'no')
        fmt = lambda s: str(s) if s is not None else '> {}'.format(len(log))  # noqa: E731
        print('| {} | {} | {} | {} | {} | {} |'.format(
            run, len(log), used, fmt(stops['training']), fmt(stops['validation']), same))
        rows.append((run, stops))
    return rows


if __name__ == '__main__':
    sys.exit(cli.main_guard(main))

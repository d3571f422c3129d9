"""Testing a trained counter on a held-out set (thesis 2.2); the command line is
``python -m Counting.evaluate``, and ``Counting.run_all`` calls :func:`evaluate_run`.

Per shape type: mean absolute error, RMSE, exact-count accuracy (the rounded prediction equals the
truth) and off-by-one rate (the rounded prediction is exactly one away), next to the baseline that
always predicts the training set's mean count. Writes ``metrics.json``, ``metrics.md`` and
``scatter.png`` (predicted against true count, one colour per type, identity line) into ``--out``
(default: ``RUN/eval``), each atomically.
"""
import json
import os

import numpy

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer

from Counting import models
from lenses_common.progress import Progress
from lenses_common.runfolder import atomic_path, atomic_write_json, atomic_write_text
from lenses_common.runfolder import check_regular_file

METRICS = ('mae', 'rmse', 'exact', 'off_by_one')
COLORS = {'tri': 'tab:orange', 'sq': 'tab:blue'}


def round_counts(pred):
    """Round half up (counts are non-negative, so this is the usual rounding)."""
    return numpy.floor(numpy.asarray(pred, dtype=numpy.float64) + 0.5)


def count_metrics(pred, truth):
    """Metrics of predictions ``pred`` against ``truth``, both (N,) for one shape type.

    Returns a dict: ``mae``, ``rmse``, ``exact`` (fraction with round(pred) == truth),
    ``off_by_one`` (fraction with |round(pred) - truth| == 1) and ``n``.
    """
    pred = numpy.asarray(pred, dtype=numpy.float64).ravel()
    truth = numpy.asarray(truth, dtype=numpy.float64).ravel()
    if pred.shape != truth.shape or pred.size == 0:
        raise ValueError('need as many predictions as truths (got {} and {})'.format(
            pred.size, truth.size))
    err = pred - truth
    miss = numpy.abs(round_counts(pred) - truth)
    return {
        'mae': float(numpy.mean(numpy.abs(err))),
        'rmse': float(numpy.sqrt(numpy.mean(err ** 2))),
        'exact': float(numpy.mean(miss == 0)),
        'off_by_one': float(numpy.mean(miss == 1)),
        'n': int(pred.size),
    }


def predict(model, dataset, batchsize=50, device=None, progress=False):
    """Counts predicted for every example of ``dataset``: float32 (N, n_types) on the CPU."""
    device = chainer.get_device(device if device is not None else '@numpy')
    model.to_device(device)
    out = []
    bar = Progress(len(dataset), desc='predicting', unit='img') if progress else None
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for start in range(0, len(dataset), batchsize):
            batch = [dataset[i] for i in range(start, min(start + batchsize, len(dataset)))]
            x = device.send(numpy.stack([b[0] for b in batch]))
            out.append(chainer.backend.CpuDevice().send(model(x).array))
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return numpy.concatenate(out).astype(numpy.float32)


def mean_counts(folder, types):
    """Mean count per type over a dataset's ``truths.json``: the baseline's constant prediction."""
    path = os.path.join(folder, 'truths.json')
    try:
        if os.path.lexists(path):
            check_regular_file(path, 'truths file')  # a FIFO would block the read for ever
        with open(path) as f:
            truths = json.load(f)
        counts = numpy.array([[entry[t] for t in types] for entry in truths.values()],
                             dtype=numpy.float64)
    except FileNotFoundError:
        raise ValueError('{} does not exist (not a Counting dataset folder)'.format(path)) from None
    except OSError as e:
        raise ValueError('{} cannot be read ({})'.format(path, e.strerror or e)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError('{} has no {} counts ({})'.format(path, '/'.join(types), e)) from None
    if counts.size == 0:
        raise ValueError('{} is empty'.format(path))
    return counts.mean(axis=0)


def evaluate_predictions(pred, truth, types, train_mean):
    """Per type: our metrics, the mean baseline's, and baseline MAE / our MAE."""
    result = {}
    for k, t in enumerate(types):
        ours = count_metrics(pred[:, k], truth[:, k])
        base = count_metrics(numpy.full(len(truth), train_mean[k]), truth[:, k])
        result[t] = {
            'ours': ours,
            'baseline': base,
            'baseline_prediction': float(train_mean[k]),
            'mae_ratio': (base['mae'] / ours['mae']) if ours['mae'] > 0 else float('inf'),
        }
        if ours['mae'] == 0:  # written as null with this reason (standard JSON has no Infinity)
            result[t]['mae_ratio_null_reason'] = 'the counter\'s MAE is 0 (every count exact)'
    return result


def scatter_plot(pred, truth, types, path, title=''):
    """Predicted against true count, one colour per type, the identity line; saved atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = float(max(numpy.max(truth), numpy.max(pred), 1.0)) + 0.5
    ax.plot([0, top], [0, top], color='0.4', linewidth=1, linestyle='--', label='identity')
    # A small horizontal offset per type keeps the two types' columns apart.
    for k, t in enumerate(types):
        shift = (k - (len(types) - 1) / 2.0) * 0.15
        ax.scatter(truth[:, k] + shift, pred[:, k], s=9, alpha=0.5,
                   color=COLORS.get(t, None), label=t)
    ax.set_xlim(-0.5, top)
    ax.set_ylim(-0.5, top)
    ax.set_xlabel('true count')
    ax.set_ylabel('predicted count')
    ax.set_title(title)
    ax.legend(loc='upper left')
    ax.set_aspect('equal')
    fig.tight_layout()
    with atomic_path(path, suffix='.png') as tmp:
        fig.savefig(tmp, format='png', dpi=100)
    plt.close(fig)


def _ratio(value):
    return '{:.2f}x'.format(value) if numpy.isfinite(value) else 'none (counter MAE 0)'


def metrics_markdown(result, types):
    lines = ['| type | counter MAE | RMSE | exact | off by one | baseline MAE | RMSE | exact | '
             'off by one | baseline MAE / ours |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for t in types:
        o, b = result[t]['ours'], result[t]['baseline']
        lines.append('| {} | {:.3f} | {:.3f} | {:.1%} | {:.1%} | {:.3f} | {:.3f} | {:.1%} | '
                     '{:.1%} | {} |'.format(t, o['mae'], o['rmse'], o['exact'],
                                            o['off_by_one'], b['mae'], b['rmse'], b['exact'],
                                            b['off_by_one'], _ratio(result[t]['mae_ratio'])))
    return '\n'.join(lines) + '\n'


def evaluate_run(run_dir, test_dir, train_dir=None, out=None, batchsize=50, device=None,
                 workers=2, progress=False):
    """Evaluate ``run_dir``'s counter on ``test_dir``; write and return the results dict."""
    from Counting.datasets import load_dataset
    model, settings = models.load_counter(run_dir)
    types = list(settings['types'])
    train_dir = train_dir or settings.get('train')
    if not train_dir:
        raise ValueError('{}: settings name no training set; pass --train'.format(run_dir))
    test = load_dataset(test_dir, types=types, workers=workers)
    if list(test.image_size) != list(settings['image_size']):
        raise ValueError('--test {}: images are {}x{} but the counter was trained on {}x{}'.format(
            test_dir, test.image_size[0], test.image_size[1], *settings['image_size']))
    train_mean = mean_counts(train_dir, types)
    pred = predict(model, test, batchsize=batchsize, device=device, progress=progress)
    truth = test.counts
    result = {
        'run': os.path.abspath(run_dir),
        'test': os.path.abspath(test_dir),
        'train': os.path.abspath(train_dir),
        'types': types,
        'n_test': len(test),
        'settings': {k: settings.get(k) for k in ('arch', 'activation', 'base', 'batch_renorm',
                                                  'optimizer', 'lr', 'epoch', 'image_size')},
        'metrics': evaluate_predictions(pred, truth, types, train_mean),
    }
    out = out or os.path.join(run_dir, 'eval')
    os.makedirs(out, exist_ok=True)
    title = '{}{} ({}), {} test images'.format(
        settings['activation'], ' + BRN' if settings['batch_renorm'] else '', settings['arch'],
        len(test))
    scatter_plot(pred, truth, types, os.path.join(out, 'scatter.png'), title)
    atomic_write_json(os.path.join(out, 'metrics.json'), result)
    atomic_write_text(os.path.join(out, 'metrics.md'), '# {}\n\n{}'.format(
        title, metrics_markdown(result['metrics'], types)))
    return result

"""Friendly.evaluate's table and Friendly.robustness's fgsm and blackbox columns come from one
evaluator: on the same networks and test images they agree image for image, and with the thesis's
FGSM protocol spelt out by hand."""
import json

import numpy

from lenses_common import compat  # noqa: F401
import chainer

from Friendly import evaluate
from Friendly import robustness
from Friendly.evaluation import black_box_set, evaluate_set
from Friendly.mnist import get_mnist
from Friendly.runs import load_run

N = 240          # a batch of 200 and a short one of 40: Batch Renormalization's batch statistics


def _count(pct, n):
    """The number of images behind a percentage of ``n`` (the reports hold percentages)."""
    count = pct * n / 100.0
    assert abs(count - round(count)) < 1e-6
    return int(round(count))


def test_evaluate_and_robustness_count_the_same_images(make_run, fgsm_by_hand, mnist_dir,
                                                       tmp_path):
    runs = {name: make_run(tmp_path / 'runs' / name, name, 0) for name in ('S', 'RS')}
    source = make_run(tmp_path / 'runs' / 'source', 'source', 1000)
    common = ['--source', source, '--test-subset', str(N), '--mnist-dir', mnist_dir,
              '--seed', '0']
    for name in runs.values():
        common += ['--run', name]
    evaluate.main(common + ['--out', str(tmp_path / 'evaluate'), '--no-progress'])
    robustness.main(common + ['--out', str(tmp_path / 'robustness'), '--preset', 'smoke',
                              '--pgd-steps', '1', '--pgd-restarts', '1', '--curve-subset', '10'])
    table = json.loads((tmp_path / 'evaluate' / 'results.json').read_text())
    report = json.loads((tmp_path / 'robustness' / 'robustness.json').read_text())
    assert table['test_images'] == N and report['images'] == {'S': N, 'RS': N}

    _, test = get_mnist(mnist_dir)
    x, t = test._datasets
    x = numpy.ascontiguousarray(x[:N], numpy.float32)
    t = numpy.asarray(t[:N], numpy.int32)
    cpu = chainer.get_device('@numpy')
    source_model, _ = load_run(source)
    black = black_box_set(source_model, x, t, 77, 200, cpu, progress=False)
    for name, run_dir in runs.items():
        model, _ = load_run(run_dir)
        by_hand = fgsm_by_hand(model, x, t, 77, 200, black)
        got = evaluate_set(model, None, x, t, 77, 200, 'batch', cpu, ['fgsm', 'blackbox'], black)
        for key in ('clean', 'fgsm', 'blackbox'):        # image for image
            numpy.testing.assert_array_equal(got[key], by_hand[key])
        # the FGSM must change some outcomes, or the comparison would say little
        assert (by_hand['fgsm'] != by_hand['clean']).any()
        mine = {k: int(v.sum()) for k, v in by_hand.items()}
        evaluated = table['accuracy_pct'][name]
        robust = report['accuracy_pct'][name]
        for ours, theirs, key in (('clean', 'clean', 'clean'), ('fgsm_white', 'fgsm', 'fgsm'),
                                  ('fgsm_black', 'blackbox', 'blackbox')):
            assert _count(evaluated[ours], N) == _count(robust[theirs], N) == mine[key]

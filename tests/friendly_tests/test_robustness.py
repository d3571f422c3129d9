import csv
import json

import numpy
import pytest

from lenses_common import compat  # noqa: F401
import chainer
import chainer.functions as F

from Friendly import adversarial
from Friendly import attacks
from Friendly import models
from Friendly import robustness
from Friendly import run_all
from Friendly import run_robustness
from Friendly import evaluation
from Friendly import pipeline
from Friendly import robustness_eval
from Friendly import robustness_report
from Friendly import runs
from Friendly import train_args


# -- margin loss and margin PGD ------------------------------------------------------------------

def test_margin_loss_by_hand():
    y = numpy.array([[0.1, 0.7, 0.2], [0.5, 0.4, -0.3], [0.0, 0.0, 0.9]], numpy.float32)
    t = numpy.array([1, 0, 0], numpy.int32)
    # largest other output minus the true one: 0.2 - 0.7, 0.4 - 0.5, 0.9 - 0.0
    numpy.testing.assert_allclose(attacks.margin_loss(y, t).array, [-0.5, -0.1, 0.9], rtol=1e-6)
    # positive exactly for the misclassified sample (the sign convention)
    assert ((attacks.margin_loss(y, t).array > 0) == (y.argmax(axis=1) != t)).all()


class TwoClassLinear(chainer.Chain):
    """y = W x with two rows: the margin of truth t is (w_(1-t) - w_t) . x, linear in x."""

    def __init__(self, W):
        super(TwoClassLinear, self).__init__()
        self.W = numpy.asarray(W, numpy.float32)

    def forward(self, x):
        return F.linear(F.reshape(x, (x.shape[0], -1)), self.W)


@pytest.mark.parametrize('eps', [10, 77])
@pytest.mark.parametrize('stack', [True, False])
def test_margin_pgd_on_a_linear_model_reaches_the_closed_form(eps, stack):
    rng = numpy.random.RandomState(4)
    W = rng.choice([-1.0, 1.0], size=(2, 16)) * rng.uniform(0.5, 1.5, size=(2, 16))
    x = rng.randint(0, 256, (8, 1, 4, 4)).astype(numpy.float32)
    t = rng.randint(0, 2, 8).astype(numpy.int32)
    # A linear margin is maximised over the box (eps-ball within 0..255) at the corner
    # x + eps sign(w_other - w_true), clipped.
    direction = numpy.sign(W[1 - t] - W[t]).reshape(x.shape)
    optimum = numpy.clip(x + eps * direction, 0, 255)
    x_adv = attacks.pgd(TwoClassLinear(W), x, t, eps=eps, steps=40, restarts=3, loss='margin',
                        rng=numpy.random.RandomState(0), stack_restarts=stack)
    numpy.testing.assert_array_equal(x_adv, optimum)


def test_stacked_and_looped_restarts_draw_the_same_starts(images):
    # One step of size 1 from the random start: the result is start +- 1, so both ways must
    # produce identical examples when they draw identical starts.
    W = numpy.random.RandomState(2).uniform(-1, 1, (2, 16))
    x, _ = images(6, shape=(1, 4, 4))
    t = numpy.zeros(6, numpy.int32)
    model = TwoClassLinear(W)
    a = attacks.pgd(model, x, t, eps=30, steps=1, step_size=1, restarts=4, loss='margin',
                    rng=numpy.random.RandomState(7), stack_restarts=True)
    b = attacks.pgd(model, x, t, eps=30, steps=1, step_size=1, restarts=4, loss='margin',
                    rng=numpy.random.RandomState(7), stack_restarts=False)
    numpy.testing.assert_array_equal(a, b)


def test_restarts_are_not_stacked_when_batch_statistics_couple_images(small, images):
    model = small('RS')
    seen = []
    original = model.forward

    def spy(x):
        seen.append(x.shape[0])
        return original(x)
    model.forward = spy
    x, t = images(5)
    with models.evaluation_mode(model, 'batch'):
        attacks.pgd(model, x, t, eps=10, steps=2, restarts=3)
    assert set(seen) == {5}     # every forward pass sees one restart's batch of 5
    seen.clear()
    with models.evaluation_mode(model, 'running'):
        attacks.pgd(model, x, t, eps=10, steps=2, restarts=3)
    assert 15 in seen           # all three restarts in one pass


def test_budgets_and_names():
    assert robustness_eval.budget('quick', 'PD')['test_subset'] == 200
    assert robustness_eval.budget('quick', 'S-PGDAT') == robustness_eval.budget('quick', 'S')
    assert robustness_eval.budget('quick', 'S', {'pgd_steps': 3, 'test_subset': None})[
        'pgd_steps'] == 3
    assert robustness_eval.budget('thesis', 'PD')['test_subset'] is None
    assert len(robustness_report.CURVE_EPS) >= 8 and 77 in robustness_report.CURVE_EPS
    assert runs.network_name({'variant': 'S', 'adversarial': 'pgd'}) == 'S-PGDAT'
    assert runs.network_name({'variant': 'RS'}) == 'RS'


def test_bad_input(capsys, tmp_path):
    def error(argv, main=robustness.main):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert 'Traceback' not in err
        return err.splitlines()[-1]
    missing = str(tmp_path / 'nope')
    assert missing in error(['--run', missing, '--source', missing, '--out', str(tmp_path)])
    assert '--eps' in error(['--run', missing, '--source', missing, '--out', str(tmp_path),
                             '--eps', '300'])
    assert '--pgd-steps' in error(['--run', missing, '--source', missing, '--out',
                                   str(tmp_path), '--pgd-steps', '0'])
    assert 'make friendly PRESET=smoke' in error(['--preset', 'smoke', '--out', str(tmp_path)],
                                                 run_robustness.main)
    # after a sweep (run_all --seeds), --seed S reads seed S's runs
    (tmp_path / 'friendly' / 'seed-1').mkdir(parents=True)
    assert str(tmp_path / 'friendly' / 'seed-1' / 'runs' / 'S') in error(
        ['--preset', 'smoke', '--seed', '1', '--out', str(tmp_path)], run_robustness.main)


# -- PGD adversarial training --------------------------------------------------------------------

def test_pgdat_option_and_settings():
    args = train_args.build_parser().parse_args(['--variant', 'S', '--out', 'x', '--adversarial',
                                            'pgd'])
    assert train_args.settings_from_args(args)['adversarial'] == 'pgd'
    plain = train_args.settings_from_args(train_args.build_parser().parse_args(
        ['--variant', 'S', '--out', 'x']))
    assert 'adversarial' not in plain     # earlier runs' settings still match
    assert adversarial.MADRY_STEP == numpy.rint(0.01 * 255)
    assert adversarial.MADRY_STEPS == 40 and adversarial.MADRY_EPS == 77
    for preset in pipeline.PGDAT_TRAIN:
        argv = pipeline.pgdat_argv(preset, 0, 'x', None, None)
        assert train_args.build_parser().parse_args(argv).adversarial == 'pgd'
    for preset in pipeline.IBP_TRAIN:
        argv = pipeline.pgdat_argv(preset, 0, 'x', None, None, 'ibp')
        args = train_args.build_parser().parse_args(argv)
        assert args.adversarial == 'ibp' and args.variant == 'S'
        assert train_args.settings_from_args(args)['ibp_loss'] == 'margin'


def test_pgd_training_loss_trains_on_in_ball_examples_and_is_reproducible(small, images):
    model = models.FriendlyClassifier(small('S'))
    x, t = images(6)
    seen = []
    original = model.forward

    def spy(x_in, t_in):
        seen.append(chainer.as_array(x_in).copy())
        return original(x_in, t_in)
    model.forward = spy
    loss = adversarial.PGDTrainingLoss(model, seed=0, iteration=lambda: 5, steps=3)
    value = loss(x, t)
    assert value.shape == () and numpy.isfinite(value.array)
    x_adv = seen[-1]
    assert (numpy.abs(x_adv - x) <= 77).all() and (x_adv == numpy.rint(x_adv)).all()
    assert (x_adv != x).any()
    again = adversarial.PGDTrainingLoss(model, seed=0, iteration=lambda: 5, steps=3)
    numpy.testing.assert_array_equal(again.adversarial_examples(x, t), x_adv)


@pytest.mark.slow
def test_smoke_pipeline_writes_the_robustness_table(mnist_dir, tmp_path):
    run_all.main(['--preset', 'smoke', '--networks', 'S,RS', '--out', str(tmp_path),
                  '--mnist-dir', mnist_dir])
    run_robustness.main(['--preset', 'smoke', '--networks', 'S,RS', '--out', str(tmp_path),
                         '--mnist-dir', mnist_dir])
    root = tmp_path / 'friendly'
    rows = list(csv.DictReader((root / 'robustness.csv').open()))
    assert [r['network'] for r in rows] == ['S', 'RS', 'S-IBP', 'S-PGDAT']
    for r in rows:
        for key in robustness_report.COLUMNS:
            assert 0 <= float(r[key]) <= 100
        for key in ('clean',) + evaluation.ATTACKS:
            assert float(r['worst_case']) <= float(r[key])
    assert (root / 'eps_curve.png').stat().st_size > 0
    report = json.loads((root / 'robustness.json').read_text())
    curve = report['eps_curve']['RS']['accuracy']
    assert len(report['eps_curve']['RS']['eps']) >= 8
    assert all(curve[e]['worst_case'] <= curve[e]['white_box'] for e in curve)
    assert '## Flags' in (root / 'robustness.md').read_text()
    # evaluated one network per process and combined: the same rows
    parts = []
    for name in ('RS', 'S'):
        part = tmp_path / ('part_' + name)
        robustness.main(['--run', str(root / 'runs' / name), '--source', str(root / 'runs' /
                                                                             'source'),
                         '--preset', 'smoke', '--out', str(part), '--mnist-dir', mnist_dir])
        parts.append(str(part / 'robustness.json'))
    combined = robustness.main(['--combine'] + parts + ['--out', str(tmp_path / 'combined')])
    for name in ('S', 'RS'):
        assert combined['accuracy_pct'][name] == report['accuracy_pct'][name]
        assert combined['eps_curve'][name] == report['eps_curve'][name]
    assert [f for f in combined['flags'] if not f.startswith('S-PGDAT')] == [
        f for f in report['flags'] if not f.startswith('S-PGDAT')]
    with pytest.raises(SystemExit):
        robustness.main(['--combine', parts[0], parts[0], '--out', str(tmp_path / 'twice')])
    # Friendly.certify on the same runs, the black-box source in its bracket: both black-box
    # attacks run, certified accuracy equals clean at eps 0 and never exceeds the worst case.
    from Friendly import certify
    cert = tmp_path / 'certify'
    certify.main(['--run', str(root / 'runs' / 'S'), '--run', str(root / 'runs' / 'RS'),
                  '--source', str(root / 'runs' / 'source'), '--preset', 'smoke',
                  '--test-subset', '100', '--bracket', '50', '--out', str(cert),
                  '--mnist-dir', mnist_dir, '--no-progress'])
    bracket = json.loads((cert / 'certify.json').read_text())['bracket']
    assert sorted(bracket) == ['RS', 'S']
    for b in bracket.values():
        assert {'blackbox', 'blackbox_float64'} <= set(b['attacks'])
        assert b['violations'] == 0
        assert b['certified']['0'] == b['worst_case']['0']
        assert all(b['certified'][e] <= b['worst_case'][e] for e in b['worst_case'])
    assert (cert / 'bracket.png').stat().st_size > 0

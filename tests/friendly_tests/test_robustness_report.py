"""Tests of Friendly.robustness_report: the gradient-masking flags."""
from Friendly.robustness_report import flags_for


def _row(**changes):
    row = dict(clean=98.0, fgsm=40.0, fgsm_float64=39.0, fgsm_bn_running=40.0, pgd=38.0,
               pgd_margin=37.0, blackbox=60.0, worst_case=36.0, zero_grad_fraction=1.0,
               zero_grad_fraction_float64=0.0)
    row.update(changes)
    return row


def test_flags():
    calm = {'white_box': 0.0, 'worst_case': 0.0}
    assert flags_for('N', _row(), calm, True) == []
    flags = flags_for('N', _row(blackbox=30.0), calm, False)
    assert len(flags) == 1 and 'black-box' in flags[0]
    flags = flags_for('N', _row(pgd=41.0, pgd_margin=40.5), calm, False)
    assert len(flags) == 1 and 'iterative PGD' in flags[0] and '40.50%' in flags[0]
    assert flags_for('N', _row(pgd=41.0, pgd_margin=39.5), calm, False) == []
    flags = flags_for('N', _row(worst_case=34.9), calm, False)
    assert len(flags) == 1 and '5.10 points' in flags[0]
    flags = flags_for('N', _row(zero_grad_fraction=5.5), calm, False)
    assert len(flags) == 1 and '5.50%' in flags[0]
    # the Batch Renormalization mode only matters for a network that has it
    assert flags_for('N', _row(fgsm_bn_running=1.0, worst_case=1.0), calm, False) \
        == flags_for('N', _row(worst_case=1.0), calm, False)
    flags = flags_for('N', _row(fgsm_bn_running=1.0), calm, True)
    assert any('Batch Renormalization mode' in f for f in flags)
    flags = flags_for('N', _row(), {'white_box': 20.0, 'worst_case': 0.0}, False)
    assert len(flags) == 1 and 'eps 255' in flags[0] and 'FGSM 20.00%' in flags[0]


def _curve(images):
    acc = {e: {'white_box': 50.0, 'worst_case': 40.0, 'per_attack': {}} for e in ('0', '77')}
    return {'eps': ['0', '77'], 'images': images, 'attacks': ['fgsm'], 'pgd_steps': 1,
            'pgd_restarts': 1, 'accuracy': acc}


def test_eps_curve_says_preset_images_and_seed(tmp_path):
    from Friendly.robustness_report import curve_caption, plot_curve
    settings = {'preset': 'smoke', 'seed': 3, 'source_seed': 1003,
                'provenance': {'command': 'python -m Friendly.robustness --seed 3',
                               'date': '2026-01-01 00:00 UTC', 'device': '@numpy',
                               'machine': {'cpu_model': 'CPU X', 'cpu_count': 2,
                                           'blas_threads': 1, 'blas_core': None}}}
    head, foot = curve_caption({'S': _curve(200), 'RS': _curve(200)}, settings)
    assert head == ('Friendly.robustness, preset smoke, first 200 test images, seed 3 '
                    '(black-box source seed 1003)')
    assert foot == ('`python -m Friendly.robustness --seed 3`; 2026-01-01 00:00 UTC; CPU X, 2 '
                    'logical CPUs, BLAS 1 thread; device @numpy')
    head, _ = curve_caption({'S': _curve(1000), 'PD': _curve(200)}, {'preset': 'quick'})
    assert 'first 200/1000 test images (per network)' in head and 'seed ?' in head
    path = tmp_path / 'eps_curve.png'
    plot_curve({'S': _curve(200)}, str(path), settings)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

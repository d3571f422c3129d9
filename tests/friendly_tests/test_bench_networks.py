import subprocess
import sys

from lenses_common import compat  # noqa: F401
import chainer
import pytest

from Friendly.bench import networks


def test_bench_training_iteration_and_fgsm_rate():
    device = chainer.get_device('@numpy')
    ms, peak = networks.training_iteration('GMR', device, repeats=2, warmup=1)
    assert ms > 0 and peak > 0
    rate, elapsed = networks.fgsm_epoch('S', device, 200)
    assert rate > 0 and elapsed > 0


@pytest.mark.slow   # two Python processes that import Chainer
def test_python_m_friendly_bench_runs_the_networks_benchmark(tmp_path):
    # ``python -m Friendly.bench`` (make bench) reaches Friendly.bench.__main__.main: -h lists its
    # options, a bad one is its one-line error.
    help_text = subprocess.run([sys.executable, '-m', 'Friendly.bench', '-h'], check=True,
                               capture_output=True, text=True).stdout
    assert '--skip-layers' in help_text and '--pd-fgsm-images' in help_text
    bad = subprocess.run([sys.executable, '-m', 'Friendly.bench', '--out', str(tmp_path),
                          '--repeats', '0'], capture_output=True, text=True)
    assert bad.returncode == 2 and 'argument --repeats: 0 is not a positive integer' in bad.stderr

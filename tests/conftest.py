import os
import pickle

import numpy
import pytest

from lenses_common import compat  # noqa: F401  (before chainer)
from chainer import testing

from lenses_common.device import gpu_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason='needs CuPy and a GPU')
    for item in items:
        # The marker itself, not `'gpu' in item.keywords`: keywords also hold the names of the
        # folders above the test, and a checkout in a folder named gpu would skip every test.
        if item.get_closest_marker('gpu') is not None:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def mnist_dir():
    """The genuine MNIST folder: $MNIST_DIR, else ../shared/data/mnist; skip when neither exists."""
    directory = os.environ.get('MNIST_DIR') or SHARED_MNIST
    if not os.path.isdir(directory):
        pytest.skip('no MNIST folder (set MNIST_DIR)')
    return directory


# ---------------------------------------------------------------------------------------------
# Booby-trapped model files: loading them the unsafe way runs code that creates a file.

class Payload:
    """Unpickling this creates ``marker``: the stand-in for code run from a model file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def write_pickle_payload(path, marker):
    """A plain pickle (named like a model file) that creates ``marker`` when loaded."""
    with open(path, 'wb') as f:
        pickle.dump({'W': Payload(marker)}, f)


def write_object_npz(path, marker):
    """An .npz whose ``W`` member is an object array that creates ``marker`` when unpickled."""
    obj = numpy.empty(1, dtype=object)
    obj[0] = Payload(marker)
    with open(path, 'wb') as f:
        numpy.savez(f, W=obj)


@pytest.fixture
def payloads():
    """``(write_pickle_payload, write_object_npz)``, each ``(path, marker)``."""
    return write_pickle_payload, write_object_npz


# ---------------------------------------------------------------------------------------------
# The set-up of the FunctionTestCase tests of the custom Chainer functions (Counting.functions,
# Friendly.functions). A test module imports these by name: ``from tests.conftest import ...``
# (pytest registers this file as the module ``tests.conftest``, so nothing is loaded twice).

#: The backends every FunctionTestCase runs on: NumPy, and CuPy on the first GPU. Chainer's
#: ``inject_backend_tests`` marks the CuPy entry ``gpu``, so it is skipped above where no GPU is
#: visible. iDeep is no dependency of the project: there is no NumPy-with-iDeep entry.
BACKENDS = [{}, {'use_cuda': True}]

#: The floating dtypes every function is checked in (float32 is the thesis's).
FLOAT_DTYPES = [numpy.float32, numpy.float64]


def function_tests(*params):
    """Class decorator of a FunctionTestCase: one case per entry of ``params`` (dicts, as for
    ``testing.parameterize``), each on every backend of :data:`BACKENDS`, with the random
    inputs of ``generate_inputs`` drawn under ``testing.fix_random`` (the same on every run)."""
    def decorate(cls):
        cls = testing.inject_backend_tests(None, BACKENDS)(cls)
        cls = testing.fix_random()(cls)
        return testing.parameterize(*params)(cls)
    return decorate


class _FixedRandom(object):
    """``chainer.testing.fix_random``'s set-up and tear-down as two methods: the decorator below
    wraps them in place (what it returns, a bundle of test cases, is not needed)."""

    def set_up(self):
        pass

    def tear_down(self):
        pass


testing.fix_random(setup_method='set_up', teardown_method='tear_down')(_FixedRandom)


@pytest.fixture
def fixed_random():
    """``chainer.testing.fix_random`` for plain pytest tests, which the decorator cannot wrap:
    NumPy's (CuPy's where available) and Python's generators start from Chainer's fixed seed for
    the test (random weights of a link's initializer, the random directions of
    ``gradient_check``) and get their states back after it. A module asks for it with
    ``pytestmark = pytest.mark.usefixtures('fixed_random')``."""
    state = _FixedRandom()
    state.set_up()
    try:
        yield
    finally:
        state.tear_down()


def _options(atol, rtol, *checks):
    """``{check: {'atol': atol, 'rtol': rtol}}`` for each of ``checks``."""
    return {check: {'atol': atol, 'rtol': rtol} for check in checks}


_BACKWARDS = ('backward', 'double_backward')
_FLOAT64 = _options(1e-7, 1e-6, *_BACKWARDS)

#: Tolerances of a FunctionTestCase by kind of function and dtype name: ``{check: options}``
#: for the checks ``forward``, ``backward`` and ``double_backward`` (a check not named keeps
#: Chainer's defaults). float64 cases have float64 tolerances: a gradient off by 0.8 % must fail.
TOLERANCES = {
    # Counting's element-wise activations (stable softplus, modified softplus, logistic).
    'elementwise': {
        'float32': {**_options(5e-3, 5e-3, 'backward'), **_options(5e-3, 5e-2, 'double_backward')},
        'float64': _options(1e-6, 1e-6, *_BACKWARDS)},
    # Friendly's Angular layer and Elastic Sigmoid.
    'smooth': {
        'float32': {**_options(1e-6, 1e-5, 'forward'), **_options(1e-3, 1e-3, *_BACKWARDS)},
        'float64': _FLOAT64},
    # Friendly's Pairwise Difference layer, full and pair form (sums of P^2 terms).
    'pairwise': {
        'float32': {**_options(1e-5, 1e-4, 'forward'), **_options(5e-3, 5e-3, *_BACKWARDS)},
        'float64': _FLOAT64},
}


class DtypeTolerances(object):
    """Mixin of a FunctionTestCase (put it first among the bases): its ``setUp`` sets the
    ``check_*_options`` of ``TOLERANCES[self.tolerances]`` for the case's ``dtype``. A class
    that adds its own ``setUp`` calls this one first."""

    tolerances = None

    def setUp(self):
        super(DtypeTolerances, self).setUp()
        for check, options in TOLERANCES[self.tolerances][numpy.dtype(self.dtype).name].items():
            setattr(self, 'check_{}_options'.format(check), dict(options))


class ElementwiseCase(DtypeTolerances):
    """Mixin of the FunctionTestCase of an element-wise function (put it first among the bases):
    one input of ``shape``, uniform in ``input_range``; ``function(x)`` is the node under test,
    ``expected(x)`` its independent reference, given ``x`` in float64."""

    tolerances = 'elementwise'
    input_range = None
    shape = None

    def function(self, x):
        raise NotImplementedError

    def expected(self, x):
        raise NotImplementedError

    def generate_inputs(self):
        low, high = self.input_range
        return numpy.random.uniform(low, high, self.shape).astype(self.dtype),

    def forward(self, inputs, device):
        x, = inputs
        return self.function(x),

    def forward_expected(self, inputs):
        x, = inputs
        return numpy.asarray(self.expected(x.astype(numpy.float64)), dtype=self.dtype),

"""The FC-100-100-10 network of Szegedy et al. (2014) and the thesis's six variants (thesis 3.3.1).

Every layer is its connection (linear, Angular or Pairwise Difference), then Batch Renormalization
when the variant uses it (decay 0.8), then the activation; the last layer too.

=======  =====================================  ============  ===============  =============
name     layers 1 / 2 / 3                       Batch Renorm  activation       learning rate
=======  =====================================  ============  ===============  =============
S        linear / linear / linear               no            sigmoid          0.002
RS       linear / linear / linear               yes           sigmoid          0.002
A        angular / angular / linear             yes           none             0.0002
GMR      linear / linear / linear               no            sigmoid          0.0009
GMRES    linear / linear / linear               no            elastic sigmoid  0.002
PD       pairwise difference / linear / linear  yes           sigmoid          0.002
=======  =====================================  ============  ===============  =============

GMR and GMRES add ``0.5 * ||d loss / d x||_2`` (the gradient of the batch loss with respect to the
whole batch of images, double backprop) to the squared-distance loss.
"""
import contextlib

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import reporter

VARIANTS = ('S', 'RS', 'A', 'GMR', 'GMRES', 'PD')

# One entry per column of thesis Table 3.1 (plus the layer kinds).
VARIANT_SETTINGS = {
    'S': dict(layers=('linear', 'linear', 'linear'), batch_renorm=False, activation='sigmoid',
              lr=0.002, gmr=False),
    'RS': dict(layers=('linear', 'linear', 'linear'), batch_renorm=True, activation='sigmoid',
               lr=0.002, gmr=False),
    'A': dict(layers=('angular', 'angular', 'linear'), batch_renorm=True, activation=None,
              lr=0.0002, gmr=False),
    'GMR': dict(layers=('linear', 'linear', 'linear'), batch_renorm=False, activation='sigmoid',
                lr=0.0009, gmr=True),
    'GMRES': dict(layers=('linear', 'linear', 'linear'), batch_renorm=False,
                  activation='elastic_sigmoid', lr=0.002, gmr=True),
    'PD': dict(layers=('pairwise_difference', 'linear', 'linear'), batch_renorm=True,
               activation='sigmoid', lr=0.002, gmr=False),
}

RENORM_DECAY = 0.8
GMR_WEIGHT = 0.5
MOMENTUM = 0.85
BATCHSIZE = 20
ANGULAR_C = 0.2
LAYER_SIZES = (784, 100, 100, 10)


class VariantError(ValueError):
    """An unknown variant name."""


def check_variant(name):
    """Return ``name`` when it is one of :data:`VARIANTS`, else raise :class:`VariantError`."""
    if name not in VARIANT_SETTINGS:
        raise VariantError('unknown variant {!r}; choose one of {}'.format(
            name, ', '.join(VARIANTS)))
    return name


PD_FORMS = ('full', 'pairs')
# Rows of P values per chunk inside the PD layer (memory and speed only, not results); the pair
# form's smaller chunks keep a chunk of tanh values in the L2 cache (about 1 MB at batch 20).
PD_CHUNK_DEFAULTS = {'full': 64, 'pairs': 16}


def check_pd_form(form):
    if form not in PD_FORMS:
        raise ValueError('unknown Pairwise Difference form {!r}; choose one of {}'.format(
            form, ', '.join(PD_FORMS)))
    return form


def _connection(kind, in_size, out_size, pd_chunk_size, pd_form='full'):
    # Imported here so that the pure linear variants need nothing beyond Chainer.
    from Friendly import links as friendly_links
    if kind == 'linear':
        return L.Linear(in_size, out_size)
    if kind == 'angular':
        return friendly_links.Angular(in_size, out_size, c=ANGULAR_C)
    if kind == 'pairwise_difference' and pd_form == 'pairs':
        return friendly_links.PairwiseDifferencePairs(in_size, out_size,
                                                      chunk_size=pd_chunk_size)
    if kind == 'pairwise_difference':
        return friendly_links.PairwiseDifference(in_size, out_size, chunk_size=pd_chunk_size)
    raise ValueError('unknown layer kind {!r}'.format(kind))


class FC100(chainer.Chain):
    """FC-100-100-10 in one of the six variants; ``forward`` returns the (B, 10) outputs.

    Links: ``l1``, ``l2``, ``l3`` (connections), ``bn1``..``bn3`` (Batch Renormalization, when the
    variant uses it) and ``es1``..``es3`` (Elastic Sigmoid, GMRES only: one learnable ``s`` per
    layer). ``pd_form`` 'full' is the thesis's Pairwise Difference layer, 'pairs' its exact
    half-size fold (:class:`Friendly.links.PairwiseDifferencePairs`, which needs the learning-rate
    factors of :func:`Friendly.optimizers.apply_pair_form_lr_factors` to train identically).
    """

    def __init__(self, variant, sizes=LAYER_SIZES, pd_chunk_size=None, pd_form='full'):
        super(FC100, self).__init__()
        self.variant = check_variant(variant)
        self.pd_form = check_pd_form(pd_form)
        if pd_chunk_size is None:
            pd_chunk_size = PD_CHUNK_DEFAULTS[pd_form]
        spec = VARIANT_SETTINGS[variant]
        self.spec = spec
        self.sizes = tuple(sizes)
        self.n_layers = len(spec['layers'])
        from Friendly import links as friendly_links
        with self.init_scope():
            for i, kind in enumerate(spec['layers'], 1):
                setattr(self, 'l{}'.format(i), _connection(
                    kind, self.sizes[i - 1], self.sizes[i], pd_chunk_size, pd_form))
                if spec['batch_renorm']:
                    # rmax 1 and dmax 0 make it Batch Normalization until RenormSchedule opens them.
                    setattr(self, 'bn{}'.format(i), L.BatchRenormalization(
                        self.sizes[i], rmax=1, dmax=0, decay=RENORM_DECAY))
                if spec['activation'] == 'elastic_sigmoid':
                    setattr(self, 'es{}'.format(i), friendly_links.ElasticSigmoid())

    def batch_renorm_links(self):
        """The Batch Renormalization links in layer order (empty for S, GMR, GMRES)."""
        if not self.spec['batch_renorm']:
            return []
        return [getattr(self, 'bn{}'.format(i)) for i in range(1, self.n_layers + 1)]

    def forward(self, x):
        h = F.reshape(x, (x.shape[0], -1))
        for i in range(1, self.n_layers + 1):
            h = getattr(self, 'l{}'.format(i))(h)
            if self.spec['batch_renorm']:
                h = getattr(self, 'bn{}'.format(i))(h)
            activation = self.spec['activation']
            if activation == 'sigmoid':
                h = F.sigmoid(h)
            elif activation == 'elastic_sigmoid':
                h = getattr(self, 'es{}'.format(i))(h)
        return h


def squared_distance_loss(y, t, reduce='mean'):
    """Thesis 3.3.1: ``(1/s) sum_i ||c_i - o_i||^2``, ``c_i`` the one-hot truth of label ``t_i``.

    ``reduce='no'`` returns the per-sample ``||c_i - o_i||^2`` (shape (B,)), the loss FGSM ascends.
    """
    xp = chainer.backend.get_array_module(y)
    t = chainer.as_array(t)
    onehot = xp.eye(y.shape[1], dtype=y.dtype)[t]
    per_sample = F.sum(F.squared_difference(y, onehot), axis=1)
    if reduce == 'no':
        return per_sample
    if reduce != 'mean':
        raise ValueError('reduce must be "mean" or "no", got {!r}'.format(reduce))
    return F.sum(per_sample) / y.shape[0]


# Added under the square root of the stabilised penalty: sqrt(s + 1e-20) has the finite slope
# 0.5e10 at s = 0 (and d s / d g = 2 g = 0 there), and differs from sqrt(s) by at most 1e-10.
STABLE_NORM_EPS = 1e-20


def gmr_penalty(loss, x, weight=GMR_WEIGHT, stabilize=False, norm=None):
    """Thesis 3.2.1: ``weight * ||d loss / d x||_2`` over the whole batch ``x``, differentiable.

    ``x`` must be the Variable the loss was computed from; the returned Variable backpropagates to
    the parameters through the gradient (double backprop). The faithful norm is
    ``sqrt(sum(g ** 2))`` (the author's ``sum(|g|^2) ** (1/2)``), whose backward divides by the
    norm and so is infinite (NaN in the chain) when the batch's input gradient is exactly 0.
    ``stabilize=True`` takes ``sqrt(sum(g ** 2) + STABLE_NORM_EPS)`` instead: the same value and
    gradient away from 0, a gradient of 0 at g = 0. ``norm`` replaces :func:`gradient_norm`
    (ChainerMN: the norm over all ranks' parts of the batch, ``lenses_common.distributed``).
    """
    gx, = chainer.grad([loss], [x], enable_double_backprop=True)
    return weight * (norm or gradient_norm)(gx, stabilize)


def gradient_norm(g, stabilize=False):
    """``sqrt(sum(g ** 2))``, or with ``stabilize`` ``sqrt(sum(g ** 2) + STABLE_NORM_EPS)``."""
    squared = F.sum(F.square(g))
    if stabilize:
        squared = squared + STABLE_NORM_EPS
    return F.sqrt(squared)


class FriendlyClassifier(chainer.Chain):
    """The training target: squared-distance loss, the GMR penalty for GMR/GMRES, accuracy.

    Reports ``loss`` (what the optimiser minimises), ``mse`` (the squared-distance term alone),
    ``penalty`` (GMR variants) and ``accuracy``. The penalty is added only while
    ``chainer.config.enable_backprop`` is on (validation runs without it and reports the plain
    loss, so early stopping compares the same quantity for every variant). ``stabilize`` selects
    the penalty's stabilised norm (:func:`gmr_penalty`); ``norm`` replaces its norm (ChainerMN:
    the norm over all ranks, ``lenses_common.distributed.Distributed.gradient_norm``).
    """

    def __init__(self, predictor, gmr_weight=None, stabilize=False, norm=None):
        super(FriendlyClassifier, self).__init__()
        with self.init_scope():
            self.predictor = predictor
        if gmr_weight is None:
            gmr_weight = GMR_WEIGHT if predictor.spec['gmr'] else 0.0
        self.gmr_weight = float(gmr_weight)
        self.stabilize = bool(stabilize)
        self.norm = norm

    def forward(self, x, t):
        use_penalty = self.gmr_weight > 0 and chainer.config.enable_backprop
        if use_penalty and not isinstance(x, chainer.Variable):
            x = chainer.Variable(x)
        y = self.predictor(x)
        mse = squared_distance_loss(y, t)
        loss = mse
        report = {'mse': mse, 'accuracy': F.accuracy(y, t)}
        if use_penalty:
            penalty = gmr_penalty(mse, x, self.gmr_weight, stabilize=self.stabilize,
                                  norm=self.norm)
            loss = mse + penalty
            report['penalty'] = penalty
        report['loss'] = loss
        reporter.report(report, self)
        return loss


@contextlib.contextmanager
def batch_statistics_mode(model):
    """Evaluate Batch Renormalization with the batch's own statistics, as the thesis did.

    Inside the block Chainer runs in train mode (so each batch is normalised by its own mean and
    variance) with rmax 1 and dmax 0 (no renormalisation correction: plain Batch Normalization) and
    decay 1 (the running averages are left untouched). Networks without Batch Renormalization are
    unaffected. Everything is restored on exit.
    """
    links = model.batch_renorm_links() if hasattr(model, 'batch_renorm_links') else []
    saved = [(bn.rmax, bn.dmax, bn.decay) for bn in links]
    try:
        for bn in links:
            bn.rmax, bn.dmax, bn.decay = 1.0, 0.0, 1.0
        with chainer.using_config('train', True):
            yield
    finally:
        for bn, (rmax, dmax, decay) in zip(links, saved):
            bn.rmax, bn.dmax, bn.decay = rmax, dmax, decay


BN_MODES = ('batch', 'running')


@contextlib.contextmanager
def evaluation_mode(model, bn_mode='batch'):
    """``bn_mode='batch'``: :func:`batch_statistics_mode` (the thesis); ``'running'``: test mode."""
    if bn_mode == 'batch':
        with batch_statistics_mode(model):
            yield
    elif bn_mode == 'running':
        with chainer.using_config('train', False):
            yield
    else:
        raise ValueError('bn_mode must be one of {}, got {!r}'.format(BN_MODES, bn_mode))

"""The counting networks of thesis 2.2, and loading a trained one.

A counter maps float32 images (B, 3, H, W) with raw 0..255 pixels to (B, n_types) non-negative
counts (a ReLU on the last linear layer), in the order of its ``types`` (``tri``, ``sq``). The
linear layer's input size is lazy, so any image size works; ``convolutional`` is the small network,
``convolutionallarge`` the larger one the thesis moved to (names kept from the original code).
"""
import json
import math
import os

from lenses_common import compat  # noqa: F401  (before chainer)
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import training

from Counting import functions
from Counting import links
from Counting.architectures import ARCHITECTURES, geometry
from lenses_common import safe_npz
from lenses_common.runfolder import load_json
from lenses_common.snapshots import FINAL_MODEL

ACTIVATIONS = tuple(functions.ACTIVATIONS)

#: Implementations of the ``softplus`` activation: this project's stable FunctionNode (default)
#: or Chainer's ``F.softplus``, the author's, whose second derivative is NaN for inputs above
#: about 89 (the "numerical issues" of thesis Figure 2.6).
SOFTPLUS_IMPLEMENTATIONS = ('stable', 'chainer')

#: Shape types in output order.
SHAPE_TYPES = ('tri', 'sq')


def get_activation(name, base=1.1, softplus='stable'):
    """The element-wise activation called ``name`` (:data:`Counting.functions.ACTIVATIONS`);
    ``base`` is used by ``modsoftplus`` only, ``softplus='chainer'`` picks ``F.softplus``, the
    author's, whose second derivative is NaN on raw pixel values (see
    :mod:`Counting.functions.softplus`)."""
    if softplus not in SOFTPLUS_IMPLEMENTATIONS:
        raise ValueError('unknown softplus implementation {!r}; choose from {}'.format(
            softplus, ', '.join(SOFTPLUS_IMPLEMENTATIONS)))
    if name not in functions.ACTIVATIONS:
        raise ValueError('unknown activation {!r}; choose from {}'.format(
            name, ', '.join(ACTIVATIONS)))
    return functions.ACTIVATIONS[name].factory(base, softplus)


def output_size(arch, image_size):
    """Spatial size (h, w) of the last feature map for an (H, W) input, or raise ValueError."""
    h, w = image_size
    for k, s, p in geometry(arch):
        h = (h + 2 * p - k) // s + 1
        w = (w + 2 * p - k) // s + 1
        if h < 1 or w < 1:
            raise ValueError('images of {}x{} are too small for the {} network'.format(
                image_size[0], image_size[1], arch))
    return h, w


class Counter(chainer.Chain):

    """Convolutions (each optionally followed by Batch Renormalization, some by average pooling),
    then a linear layer (on the map summed over space for the ``sum_pooled`` architectures); the
    layers and traits are the architecture's record, :data:`Counting.architectures.ARCHITECTURES`.

    Args:
        arch (str): ``convolutional`` or ``convolutionallarge`` (the thesis's), ``local`` or
            ``edgepool`` (beyond it; :mod:`Counting.architectures`).
        activation (str): hidden activation, one of :data:`ACTIVATIONS`.
        n_types (int): number of counts (shape types) to output.
        batch_renorm (bool): Batch Renormalization after every convolution, before the
            activation (``edgepool``: every convolution but its edge layer); the renormalized
            convolutions of ``convolutional``, ``local`` and ``edgepool`` then drop their bias,
            those of ``convolutionallarge`` keep it, as in the author's code.
        base (float): base of the ``modsoftplus`` activation.
        renorm_decay (float): decay of the running averages (default: 0.99 small, 0.95 large).
        softplus (str): ``stable`` or ``chainer`` (:data:`SOFTPLUS_IMPLEMENTATIONS`).
    """

    def __init__(self, arch='convolutional', activation='relu', n_types=2, batch_renorm=False,
                 base=1.1, renorm_decay=None, softplus='stable'):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError('unknown architecture {!r}; choose from {}'.format(
                arch, ', '.join(ARCHITECTURES)))
        if int(n_types) < 1:
            raise ValueError('n_types must be at least 1, got {}'.format(n_types))
        self.arch = arch
        self.activation = activation
        self.base = float(base)
        self.n_types = int(n_types)
        self.batch_renorm = bool(batch_renorm)
        self.softplus = softplus
        self.activation_fn = get_activation(activation, base, softplus)
        record = ARCHITECTURES[arch]
        self.sum_pooled = record.sum_pooled
        nobias = self.batch_renorm and record.nobias_under_renorm
        decay = record.renorm_decay if renorm_decay is None else renorm_decay
        self.n_conv = len(record.layers)
        self.pool_after = record.pool_after
        self.edge_shift = record.edge_shift
        #: index of the first convolution followed by Batch Renormalization (when it is on)
        self.renorm_from = 1 if record.no_renorm_first else 0
        with self.init_scope():
            for i, (c_in, c_out, k, s, p) in enumerate(record.layers):
                renorm = self.batch_renorm and i >= self.renorm_from
                if i == 0 and record.edge_first:
                    conv = links.EdgeConvolution2D(c_in, c_out, k, stride=s, pad=p,
                                                   nobias=nobias and renorm,
                                                   initialW=chainer.initializers.LeCunNormal(
                                                       record.edge_init_scale))
                else:
                    conv = links.Convolution2D(c_in, c_out, k, stride=s, pad=p,
                                               nobias=nobias and renorm)
                setattr(self, 'conv{}'.format(i + 1), conv)
                if renorm:
                    setattr(self, 'brn{}'.format(i + 1), L.BatchRenormalization(
                        c_out, rmax=1.0, dmax=0.0, decay=decay))
            if self.sum_pooled:
                # The sums are large (tens per channel): zero weights and a bias of one start
                # every count at 1 with its output ReLU open, instead of far off or dead at 0.
                self.fc = L.Linear(None, self.n_types, initial_bias=1.0,
                                   initialW=chainer.initializers.Zero())
            else:
                self.fc = L.Linear(None, self.n_types)

    def renorm_layers(self):
        return [getattr(self, 'brn{}'.format(i + 1))
                for i in range(self.renorm_from, self.n_conv)] if self.batch_renorm else []

    def set_renorm_limits(self, rmax, dmax):
        """Set the Batch Renormalization clipping limits of every layer (no-op without BRN)."""
        for layer in self.renorm_layers():
            layer.rmax = float(rmax)
            layer.dmax = float(dmax)

    def forward(self, x):
        if self.sum_pooled:
            # One blank image rides along in the batch (Batch Renormalization sees it too), and
            # its features, the same at every position, are taken off before the sum.
            blank = self.xp.zeros((1,) + x.shape[1:], dtype=x.dtype)
            h = self.features(F.concat([x, blank], axis=0))
            h, blank = h[:-1], h[-1:, :, :1, :1]
            h = F.sum(h - F.broadcast_to(blank, h.shape), axis=(2, 3))
            return F.relu(self.fc(h))
        return F.relu(self.fc(self.features(x)))

    def features(self, x):
        """The last convolution's activations."""
        h = x
        for i in range(self.n_conv):
            h = getattr(self, 'conv{}'.format(i + 1))(h)
            if self.batch_renorm and i >= self.renorm_from:
                h = getattr(self, 'brn{}'.format(i + 1))(h)
            if i == 0 and self.edge_shift:
                h = h - self.edge_shift
            h = self.activation_fn(h)
            if i in self.pool_after:
                h = F.average_pooling_2d(h, 2, 2)
        return h


def build_counter(arch='convolutional', activation='relu', n_types=2, batch_renorm=False,
                  base=1.1, renorm_decay=None, softplus='stable'):
    """Build a :class:`Counter` (see its arguments)."""
    return Counter(arch=arch, activation=activation, n_types=n_types,
                   batch_renorm=batch_renorm, base=base, renorm_decay=renorm_decay,
                   softplus=softplus)


class CountingLoss(chainer.Chain):

    """Mean squared error between predicted and true counts; also reports the mean |error|."""

    def __init__(self, predictor):
        super().__init__()
        with self.init_scope():
            self.predictor = predictor

    def forward(self, x, t):
        y = self.predictor(x)
        loss = F.mean_squared_error(y, t)
        chainer.report({'loss': loss, 'mae': F.mean_absolute_error(y, t)}, self)
        return loss


class RenormSchedule(training.Extension):

    """The Batch Renormalization limit schedule (the author's), as a resumable Trainer extension.

    ``rmax``/``dmax`` start at 1 and 0 (plain batch normalization). The first time the reported
    training loss (per iteration) falls below ``threshold`` both become ``values[0]`` (1.1), then
    every ``interval`` epochs they step through the rest (10, 100, 1000). Its state goes into
    snapshots and is put back on the model when a resumed trainer starts.
    """

    trigger = 1, 'iteration'
    priority = training.PRIORITY_READER

    def __init__(self, model, threshold=3.0, interval=20, values=(1.1, 10.0, 100.0, 1000.0),
                 key='main/loss'):
        self.model = model
        self.threshold = float(threshold)
        self.interval = int(interval)
        self.values = tuple(float(v) for v in values)
        self.key = key
        self.stage = 0           # 0: not yet triggered, k: values[k - 1] in use
        self.start_epoch = -1.0  # epoch_detail at which stage 1 began

    def limits(self):
        """The current (rmax, dmax)."""
        if self.stage == 0:
            return 1.0, 0.0
        v = self.values[self.stage - 1]
        return v, v

    def _apply(self):
        self.model.set_renorm_limits(*self.limits())

    def initialize(self, trainer):
        self._apply()

    def __call__(self, trainer):
        epoch = trainer.updater.epoch_detail
        if self.stage == 0:
            loss = trainer.observation.get(self.key)
            if loss is None:
                return
            loss = float(chainer.backend.CpuDevice().send(getattr(loss, 'array', loss)))
            if loss < self.threshold:
                self.stage = 1
                self.start_epoch = epoch
                self._apply()
            return
        wanted = min(1 + int(math.floor((epoch - self.start_epoch) / self.interval + 1e-9)),
                     len(self.values))
        if wanted != self.stage:
            self.stage = wanted
            self._apply()

    def serialize(self, serializer):
        self.stage = int(serializer('stage', self.stage))
        self.start_epoch = float(serializer('start_epoch', self.start_epoch))


class RunError(ValueError):
    """A run folder that cannot be loaded as a counter."""


REQUIRED_SETTINGS = ('arch', 'activation', 'base', 'batch_renorm', 'types', 'image_size',
                     'softplus')
#: The settings that define a counter's network: a model file records them (``_meta/counter``),
#: and loading it, or resuming its run, refuses settings that differ.
NETWORK_KEYS = ('arch', 'activation', 'base', 'batch_renorm', 'types', 'image_size', 'softplus')


def network_identity(settings):
    """The settings that define the network, normalised for comparison (lists, floats)."""
    out = {}
    for key in NETWORK_KEYS:
        value = settings.get(key)
        if isinstance(value, tuple):
            value = list(value)
        if key == 'base' and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


def network_meta(settings):
    """The ``_meta`` entries a counter's model file carries (see :func:`load_counter`)."""
    return {'counter': json.dumps(network_identity(settings), sort_keys=True)}


def check_settings_types(settings, settings_path):
    """Raise :class:`RunError` when a network setting has the wrong type or range."""
    def bad(key, want):
        raise RunError('{}: bad settings ({} is {!r}; expected {})'.format(
            settings_path, key, settings.get(key), want))
    if not isinstance(settings['arch'], str) or settings['arch'] not in ARCHITECTURES:
        bad('arch', 'one of ' + ', '.join(sorted(ARCHITECTURES)))
    if not isinstance(settings['activation'], str) or settings['activation'] not in ACTIVATIONS:
        bad('activation', 'one of ' + ', '.join(ACTIVATIONS))
    base = settings['base']
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base):
        bad('base', 'a finite number')
    if not isinstance(settings['batch_renorm'], bool):
        bad('batch_renorm', 'true or false')
    if settings['softplus'] not in SOFTPLUS_IMPLEMENTATIONS:
        bad('softplus', 'one of ' + ', '.join(SOFTPLUS_IMPLEMENTATIONS))
    types = settings['types']
    if (not isinstance(types, list) or not types or len(set(map(str, types))) != len(types)
            or not all(isinstance(t, str) for t in types)):
        bad('types', 'a list of distinct shape type names')
    size = settings['image_size']
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        bad('image_size', '[width, height], two positive integers')


def counter_from_settings(settings):
    """Build the (untrained, lazily shaped) counter that ``settings`` describe."""
    return build_counter(arch=settings['arch'], activation=settings['activation'],
                         n_types=len(settings['types']), batch_renorm=settings['batch_renorm'],
                         base=settings['base'], renorm_decay=settings.get('renorm_decay'),
                         softplus=settings['softplus'])


def load_counter(run_dir, device=None):
    """Load the trained counter of a run folder written by ``Counting.train`` (the one loader of
    a run: the command lines, the evaluation and ``Counting.run_all`` all call it).

    Returns:
        (model, settings): the :class:`Counter` on ``device`` (default: the CPU) with its
        weights, and the run's
        settings dict (keys include arch, activation, base, batch_renorm, types, image_size
        as [width, height]).

    Raises:
        RunError: with a one-line message for a missing folder, settings or model file, settings
            that are not a counting run, or a model file that does not fit them.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise RunError('run folder {} does not exist'.format(run_dir))
    settings_path = os.path.join(run_dir, 'settings.json')
    try:
        settings = load_json(settings_path)
    except ValueError as e:
        raise RunError(str(e)) from None
    if not isinstance(settings, dict):
        raise RunError('{} is not a counting run (not a JSON object)'.format(settings_path))
    missing = [k for k in REQUIRED_SETTINGS if k not in settings]
    if missing:
        raise RunError('{} is not a counting run: missing {}'.format(
            settings_path, ', '.join(missing)))
    check_settings_types(settings, settings_path)
    try:
        model = counter_from_settings(settings)
        width, height = settings['image_size']
        output_size(settings['arch'], (height, width))
    except (ValueError, TypeError, KeyError) as e:
        raise RunError('{}: bad settings ({})'.format(settings_path, e)) from None
    model_path = os.path.join(run_dir, FINAL_MODEL)
    if os.path.lexists(model_path) and not os.path.isfile(model_path):
        raise RunError('model file {} is not a regular file (a FIFO or a device)'.format(
            model_path))
    if not os.path.isfile(model_path):
        raise RunError('model file {} does not exist (training not finished?)'.format(model_path))
    # The linear layer's weight must have its shape before the file can be compared and loaded.
    _initialize_lazy(model, (height, width))
    load_model_file(model_path, model, settings, settings_path)
    if device is not None:
        model.to_device(device)
    return model, settings


def load_model_file(model_path, model, settings, settings_path):
    """Safely load ``model_path`` into ``model`` (no pickle; names, shapes and dtypes checked) and
    refuse a file whose recorded network (``_meta/counter``) differs from ``settings``."""
    try:
        meta = safe_npz.load_npz(model_path, model, what='model file')
    except safe_npz.ModelFileError as e:
        raise RunError('{} (settings {})'.format(e, settings_path)) from None
    recorded = safe_npz.meta_text(meta, 'counter')
    if recorded is None:
        raise RunError('model file {} records no network (no _meta/counter entry): it was not '
                       'written by this version of Counting.train; train the counter '
                       'again'.format(model_path))
    try:
        recorded = json.loads(recorded)
    except ValueError:
        raise RunError('model file {}: unreadable _meta/counter entry'.format(
            model_path)) from None
    wanted = network_identity(settings)
    diff = [k for k in NETWORK_KEYS if recorded.get(k) != wanted[k]]
    if diff:
        raise RunError('model file {} was trained as {} but {} says {}'.format(
            model_path, ', '.join('{}={}'.format(k, json.dumps(recorded.get(k))) for k in diff),
            settings_path, ', '.join('{}={}'.format(k, json.dumps(wanted[k])) for k in diff)))


def _initialize_lazy(model, hw):
    """Give the lazy linear layer its input size for (height, width) images, without a forward."""
    h, w = output_size(model.arch, hw)
    if model.sum_pooled:
        h = w = 1
    model.fc._initialize_params(ARCHITECTURES[model.arch].layers[-1][1] * h * w)

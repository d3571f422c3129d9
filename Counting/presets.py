"""The presets of ``Counting.run_all``: for each, the data, the counters, their training, the
images pictured and scored, and the detection methods scored.

``smoke`` for CI, ``quick`` (``make counting``, <= 30 minutes on a 2-core CPU), ``thesis``
(1000 x 1000 images, ``convolutionallarge``, 100 epochs: meant for a GPU), ``gpu-lease`` (the
thesis's data and network with fewer images and epochs, sized for 8 minutes on one H100/H200) and
``gpu-lease-smoke`` (its smoke version, on the CPU in the tests). Counting/README.md says what
each one shortens and why.
"""

#: Dataset options per preset, passed to Counting.datasets.generate_dataset.
#: quick: 128 x 128 images of at most 4 shapes, one scale of 20..32 px per image (the thesis's
#: final choice, after Guan & Loew), shapes 2 px apart (each its own blob, so that its outline
#: can be measured). The shapes are wide against the edgepool counter's first layer (3 x 3), so
#: their outlines and interiors can be told apart (Counting/README.md, "The quick preset").
#: smoke: the same at 96 x 96 with smaller shapes, a few hundred images.
DATASETS = {
    'smoke': dict(n_train=400, n_test=60, image_size=(96, 96), shape_limit=3, scale=(16, 22),
                  shape_scaling=True, min_gap=2),
    'quick': dict(n_train=4000, n_test=500, image_size=(128, 128), shape_limit=4,
                  scale=(20, 32), shape_scaling=True, min_gap=2),
    # Streamed from disk (--stream): 5,500 of 1000 x 1000 would take 16.5 GB in memory.
    'thesis': dict(n_train=5000, n_test=500, image_size=(1000, 1000), shape_limit=20,
                   scale=(60, 120), shape_scaling=True),
    # The thesis's data and network sized for one GPU lease of 8 minutes (docs/counting-results.md,
    # "The gpu-lease preset": measured per-image CPU costs and the assumed GPU speed-up).
    'gpu-lease': dict(n_train=500, n_test=50, image_size=(1000, 1000), shape_limit=20,
                      scale=(60, 120), shape_scaling=True),
    # Its smoke version for the CPU tests: the same pipeline at the large network's smallest
    # input (835 x 835), a handful of images with few shapes.
    'gpu-lease-smoke': dict(n_train=6, n_test=2, image_size=(835, 835), shape_limit=2,
                            scale=(60, 120), shape_scaling=True),
}
COMMON_DATA = dict(types=('tri', 'sq'), shape_rotations=True, limit_scale_resampling=True)

#: The three counters of the thesis: (run name, activation, Batch Renormalization), on the
#: preset's network (TRAINING's '*' arch).
COUNTERS = (
    ('relu', 'relu', False),
    ('softplus', 'softplus', False),
    ('sigmoid_brn', 'sigmoid', True),
)
#: The thesis's small network beside edgepool on the smoke and quick data: SoftPlus, and sigmoid
#: with Batch Renormalization (the thesis's training); TRAINING sets their arch.
THESIS_NETWORK = (
    ('conv_softplus', 'softplus', False),
    ('conv_sigmoid_brn', 'sigmoid', True),
)
#: The counters each preset trains.
PRESET_COUNTERS = {'smoke': COUNTERS + THESIS_NETWORK, 'quick': COUNTERS + THESIS_NETWORK,
                   'thesis': COUNTERS, 'gpu-lease': COUNTERS, 'gpu-lease-smoke': COUNTERS}

#: Training options per preset: '*' for every counter, then per-counter overrides. The author's
#: default optimiser is plain SGD; he added momentum (0.85) for the sigmoid counters. quick uses
#: RMSprop (one of the thesis's optimisers): with raw 0..255 pixels and a sum over the image,
#: plain SGD's steps are as large as the gradients, which start in the thousands.
TRAINING = {
    'smoke': {'*': dict(arch='edgepool', epoch=2, batchsize=20, optimizer='rmsprop',
                        lr=3e-4, snapshot_interval=1),
              'sigmoid_brn': dict(lr=1e-3)},
    'quick': {'*': dict(arch='edgepool', epoch=6, batchsize=20, optimizer='rmsprop',
                        lr=3e-4, snapshot_interval=2),
              'sigmoid_brn': dict(lr=1e-3)},
    'thesis': {'*': dict(arch='convolutionallarge', epoch=100, batchsize=20, optimizer='sgd',
                         lr=0.07, snapshot_interval=10, stream=True),
               'sigmoid_brn': dict(optimizer='momentum')},
    # The thesis's training (SGD 0.07, momentum for sigmoid + BRN), fewer epochs; in memory (500
    # images of 1000 x 1000 take 1.5 GB as uint8 per training).
    'gpu-lease': {'*': dict(arch='convolutionallarge', epoch=6, batchsize=20, optimizer='sgd',
                            lr=0.07, snapshot_interval=2),
                  'sigmoid_brn': dict(optimizer='momentum')},
    'gpu-lease-smoke': {'*': dict(arch='convolutionallarge', epoch=1, batchsize=3,
                                  optimizer='sgd', lr=0.07, snapshot_interval=1),
                        'sigmoid_brn': dict(optimizer='momentum')},
}
# The thesis's small network on the smoke and quick data, RMSprop as edgepool (same reason). Its
# own learning rates and epochs: SoftPlus at 3e-3 and 3e-4 left its outputs dead at 0 (validation
# MAE 1.31) while 1e-3 learnt; sigmoid + BRN learns at 1e-2, the rate the thesis's network had on
# the former quick data. An epoch of it costs about an eighth of an edgepool epoch's CPU time, so
# 20 epochs fit beside edgepool's 6 (docs/counting-results.md).
for _preset, _epochs in (('smoke', 2), ('quick', 20)):
    TRAINING[_preset]['conv_softplus'] = dict(arch='convolutional', epoch=_epochs, lr=1e-3,
                                              snapshot_interval=max(1, _epochs // 4))
    TRAINING[_preset]['conv_sigmoid_brn'] = dict(arch='convolutional', epoch=_epochs, lr=1e-2,
                                                 snapshot_interval=max(1, _epochs // 4))


#: Test images that get saliency and detection pictures.
N_PICTURES = {'smoke': 2, 'quick': 4, 'thesis': 4, 'gpu-lease': 2, 'gpu-lease-smoke': 1}


#: Detection methods scored on the test images: (tag, detection options, those of
#: Counting.detect). The thesis's loop needs a non-zero second derivative, so the counters of an
#: activation that is not ``smooth`` (Counting.functions.ACTIVATIONS: ReLU) get the
#: first-derivative variants only.
DETECTION_METHODS = (
    ('second', dict(method='second')),
    ('second_auto', dict(method='second', threshold='auto')),
    ('second_auto_connected', dict(method='second', threshold='auto', connected=True)),
    ('upper', dict(method='upper')),
    ('kmeans', dict(method='kmeans')),
    # Shapes told apart by type (thesis 2.2.2): once per output, round(output) groups each.
    ('second_typed', dict(method='second', typed=True)),
    ('second_auto_connected_typed', dict(method='second', threshold='auto', connected=True,
                                         typed=True)),
    ('upper_typed', dict(method='upper', typed=True)),
)
#: Test images the detection methods and the outline measure are scored on.
N_SCORED = {'smoke': 10, 'quick': 50, 'thesis': 50, 'gpu-lease': 4, 'gpu-lease-smoke': 1}
#: Presets that score only some methods (default: all of DETECTION_METHODS). At 1000 x 1000 the
#: automatic threshold costs about 0.7 CPU s per group (K-means on the logarithms of a row that
#: the large network makes non-zero over the whole image) and ``kmeans`` 1.5 CPU s per image, on
#: the CPU whatever the device: the lease keeps one automatic method per kind and drops kmeans.
PRESET_METHODS = {p: ('second', 'second_auto_connected', 'upper', 'second_typed',
                      'second_auto_connected_typed', 'upper_typed')
                  for p in ('gpu-lease', 'gpu-lease-smoke')}


#: The method of the contact sheets: the automatic second-derivative loop with connected groups,
#: the best of the automatic methods (docs/counting-detection.md); for ReLU, whose
#: second derivative is zero (not ``smooth``), the first-derivative variant.
SHEET_METHOD = {True: 'second_auto_connected', False: 'upper'}
#: The typed sheet's method (contact_sheet_typed.png): the same, told apart by type.
TYPED_SHEET_METHOD = {True: 'second_auto_connected_typed', False: 'upper_typed'}

"""The counters' layer tables: convolutions per architecture and what sets them apart."""

#: (in, out, ksize, stride, pad) per convolution.
ARCHITECTURES = {
    'convolutional': (
        (3, 10, 7, 5, 0),
        (10, 10, 7, 5, 0),
        (10, 10, 3, 5, 0),
    ),
    'convolutionallarge': (
        (3, 30, 7, 3, 0),
        (30, 40, 7, 3, 0),
        (40, 50, 7, 3, 0),
        (50, 60, 5, 1, 2),
        (60, 70, 5, 1, 2),
        (70, 60, 5, 1, 2),
        (60, 50, 5, 2, 0),
        (50, 40, 5, 2, 0),
        (40, 30, 3, 1, 0),
        (30, 20, 3, 1, 0),
    ),
}

#: Beyond the thesis: a counter that sees only small patches (receptive field 9 px) and adds up
#: their evidence over the image (a global sum before the linear layer). With one shape scale per
#: image it can only count from local features (corners and edges), which should put its saliency
#: on the outlines (Counting/README.md, "The quick preset"). No stride: a stride makes the backward
#: signal periodic, and the edge-like first layer then gives the background a grid of saliency.
ARCHITECTURES['local'] = (
    (3, 8, 3, 1, 0),
    (8, 8, 3, 1, 0),
    (8, 8, 3, 1, 0),
    (8, 8, 3, 1, 0),
)

#: Beyond the thesis: ``local`` with a wider view. Convolutions without stride, each of the first
#: three followed by 2 x 2 average pooling (:data:`POOL_AFTER`), so the receptive field is 38 px
#: (as wide as the quick preset's shapes) at a fraction of ``local``'s cost. Pooling whose windows
#: tile the map keeps the sum of a pattern (a quarter of it), so, as in ``local``, a uniform
#: region farther than the receptive field from every edge gets exactly zero saliency; a strided
#: convolution would not (it samples the pattern, and the background gets a grid).
ARCHITECTURES['edgepool'] = (
    (3, 16, 3, 1, 0),
    (16, 16, 3, 1, 0),
    (16, 16, 3, 1, 0),
    (16, 16, 3, 1, 0),
)

#: Per architecture, the (0-based) convolutions followed by 2 x 2 average pooling (stride 2).
POOL_AFTER = {'edgepool': (0, 1, 2)}

#: Architectures whose last feature map, less its value on a blank image, is summed over space
#: before the linear layer. With an edge-like first layer every uniform region (inside a shape
#: or on the background) gives the blank image's features, so only the evidence near edges and
#: corners is added up, and an empty image counts as the linear layer's bias.
SUM_POOLED = ('local', 'edgepool')

#: Architectures whose first convolution is edge-like: each kernel has zero sum over its window
#: (per input channel), so it ignores uniform regions, inside a shape as on the background. Its
#: initial weights are LeCun's times ``EDGE_INIT_SCALE[arch]``: ``local`` divides them by 10
#: (LeCun's scale assumes inputs of unit size, and the raw 0..255 pixels would start its units far
#: out in their saturated range); ``edgepool`` keeps them, its edges must clear ``EDGE_SHIFT``.
EDGE_FIRST = ('local', 'edgepool')

#: Architectures whose edge-like first layer is followed by a fixed shift of its pre-activations
#: by ``-EDGE_SHIFT[arch]``. A uniform region (inside a shape or on the background) then sits far
#: in the activation's flat tail: SoftPlus' slope at -24 is 4e-11 of its largest, the logistic's
#: 1.5e-10, ReLU's exactly 0. So only pixels at an edge pass a gradient back to the image, and even
#: the thesis's tenth-root pictures (which lift 1e-10 to 0.1 of the largest value) show the
#: uniform regions dark. The layer's initial weights are LeCun's (``EDGE_INIT_SCALE``): on raw
#: 0..255 pixels an edge then gives pre-activations of tens, beyond the shift.
EDGE_SHIFT = {'edgepool': 24.0}
EDGE_INIT_SCALE = {'local': 0.1, 'edgepool': 1.0}

#: Architectures whose edge-like first layer has no Batch Renormalization even when the others
#: have it: renormalizing would divide its output by its spread over the batch, which the uniform
#: regions (zero) dominate, and put the edges within a few units of zero, where the shift of
#: :data:`EDGE_SHIFT` would close them too.
NO_RENORM_FIRST = ('edgepool',)

#: Batch Renormalization decay per architecture (the author's values).
RENORM_DECAY = {'convolutional': 0.99, 'convolutionallarge': 0.95, 'local': 0.99,
                 'edgepool': 0.99}

#: Architectures whose convolutions drop their bias under Batch Renormalization. The author's
#: small network does; his ``convolutionallarge`` keeps its biases.
NOBIAS_UNDER_RENORM = ('convolutional', 'local', 'edgepool')


def geometry(arch):
    """``(ksize, stride, pad)`` of every layer that changes the spatial size, in order: the
    convolutions and the average poolings of :data:`POOL_AFTER`."""
    out = []
    pools = POOL_AFTER.get(arch, ())
    for i, (_, _, k, s, p) in enumerate(ARCHITECTURES[arch]):
        out.append((k, s, p))
        if i in pools:
            out.append((2, 2, 0))
    return tuple(out)

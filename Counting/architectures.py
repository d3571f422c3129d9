"""The counters' architectures: one record per architecture, holding its convolutions and what
sets it apart (:class:`Architecture`), in one table, :data:`ARCHITECTURES`."""
import typing


class Architecture(typing.NamedTuple):

    """One counter architecture.

    Attributes:
        name: its ``--arch`` name.
        layers: ``(in, out, ksize, stride, pad)`` per convolution.
        renorm_decay: Batch Renormalization decay (the author's values).
        nobias_under_renorm: the convolutions drop their bias under Batch Renormalization (the
            author's small network does; his ``convolutionallarge`` keeps its biases).
        pool_after: the (0-based) convolutions followed by 2 x 2 average pooling (stride 2).
        sum_pooled: the last feature map, less its value on a blank image, is summed over space
            before the linear layer. With an edge-like first layer every uniform region (inside a
            shape or on the background) gives the blank image's features, so only the evidence
            near edges and corners is added up, and an empty image counts as the linear layer's
            bias.
        edge_first: the first convolution is edge-like: each kernel has zero sum over its
            window (per input channel), so it ignores uniform regions, inside a shape as on the
            background.
        edge_init_scale: the edge layer's initial weights are LeCun's times this (None without
            an edge layer).
        edge_shift: the edge layer's pre-activations are shifted by ``-edge_shift``.
        no_renorm_first: the edge layer has no Batch Renormalization even when the others have
            it.
    """

    name: str
    layers: tuple
    renorm_decay: float
    nobias_under_renorm: bool
    pool_after: tuple = ()
    sum_pooled: bool = False
    edge_first: bool = False
    edge_init_scale: typing.Optional[float] = None
    edge_shift: float = 0.0
    no_renorm_first: bool = False


_RECORDS = (
    # The thesis's small network (the author's ``convolutional``).
    Architecture('convolutional', (
        (3, 10, 7, 5, 0),
        (10, 10, 7, 5, 0),
        (10, 10, 3, 5, 0),
    ), renorm_decay=0.99, nobias_under_renorm=True),
    # The larger network the thesis moved to; it keeps its biases under renormalization.
    Architecture('convolutionallarge', (
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
    ), renorm_decay=0.95, nobias_under_renorm=False),
    # Beyond the thesis: a counter that sees only small patches (receptive field 9 px) and adds
    # up their evidence over the image (a global sum before the linear layer). With one shape
    # scale per image it can only count from local features (corners and edges), which should put
    # its saliency on the outlines (Counting/README.md, "The quick preset"). No stride: a stride
    # makes the backward signal periodic, and the edge-like first layer then gives the background
    # a grid of saliency. Its edge weights are LeCun's divided by 10: LeCun's scale assumes inputs
    # of unit size, and the raw 0..255 pixels would start its units far out in their saturated
    # range.
    Architecture('local', (
        (3, 8, 3, 1, 0),
        (8, 8, 3, 1, 0),
        (8, 8, 3, 1, 0),
        (8, 8, 3, 1, 0),
    ), renorm_decay=0.99, nobias_under_renorm=True, sum_pooled=True, edge_first=True,
        edge_init_scale=0.1),
    # Beyond the thesis: ``local`` with a wider view. Convolutions without stride, each of the
    # first three followed by 2 x 2 average pooling, so the receptive field is 38 px (as wide as
    # the quick preset's shapes) at a fraction of ``local``'s cost. Pooling whose windows tile the
    # map keeps the sum of a pattern (a quarter of it), so, as in ``local``, a uniform region
    # farther than the receptive field from every edge gets exactly zero saliency; a strided
    # convolution would not (it samples the pattern, and the background gets a grid).
    # Its edge layer is shifted by -24: a uniform region then sits far in the activation's flat
    # tail (SoftPlus' slope at -24 is 4e-11 of its largest, the logistic's 1.5e-10, ReLU's exactly
    # 0), so only pixels at an edge pass a gradient back to the image, and even the thesis's
    # tenth-root pictures (which lift 1e-10 to 0.1 of the largest value) show the uniform regions
    # dark. The edge weights stay LeCun's: on raw 0..255 pixels an edge then gives
    # pre-activations of tens, beyond the shift. The edge layer is not renormalized: that would
    # divide its output by its spread over the batch, which the uniform regions (zero) dominate,
    # and put the edges within a few units of zero, where the shift would close them too.
    Architecture('edgepool', (
        (3, 16, 3, 1, 0),
        (16, 16, 3, 1, 0),
        (16, 16, 3, 1, 0),
        (16, 16, 3, 1, 0),
    ), renorm_decay=0.99, nobias_under_renorm=True, pool_after=(0, 1, 2), sum_pooled=True,
        edge_first=True, edge_init_scale=1.0, edge_shift=24.0, no_renorm_first=True),
)

#: Architecture name -> :class:`Architecture`, in the order of the command lines' choices.
ARCHITECTURES = {record.name: record for record in _RECORDS}


def geometry(arch):
    """``(ksize, stride, pad)`` of every layer that changes the spatial size, in order: the
    convolutions and the average poolings of ``pool_after``."""
    record = ARCHITECTURES[arch]
    out = []
    for i, (_, _, k, s, p) in enumerate(record.layers):
        out.append((k, s, p))
        if i in record.pool_after:
            out.append((2, 2, 0))
    return tuple(out)

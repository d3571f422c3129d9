"""The counters' layer tables: convolutions per architecture and what sets them apart (SPEC)."""

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

#: Architectures whose last feature map, less its value on a blank image, is summed over space
#: before the linear layer. With an edge-like first layer every uniform region (inside a shape
#: or on the background) gives the blank image's features, so only the evidence near edges and
#: corners is added up, and an empty image counts as the linear layer's bias.
SUM_POOLED = ('local',)

#: Architectures whose first convolution is edge-like: each kernel has zero sum over its window
#: (per input channel), so it ignores uniform regions, inside a shape as on the background. Its
#: initial weights are LeCun's divided by 10: LeCun's scale assumes inputs of unit size, and the
#: pixels are raw 0..255, which would start every unit far out in its saturated range.
EDGE_FIRST = ('local',)

#: Batch Renormalization decay per architecture (SPEC).
RENORM_DECAY = {'convolutional': 0.99, 'convolutionallarge': 0.95, 'local': 0.99}

#: Architectures whose convolutions drop their bias under Batch Renormalization. The author's
#: small network does; his ``convolutionallarge`` keeps its biases (SPEC).
NOBIAS_UNDER_RENORM = ('convolutional', 'local')

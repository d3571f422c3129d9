"""Shape detection from a counter's saliency (thesis 2.2.2 and 2.2.3), one module per job.

* :mod:`~Counting.detection.second`: the thesis's loop as written (method ``second``);
* :mod:`~Counting.detection.accelerator`: the same groups with fewer, cheaper backward passes
  (row packing, kept graph, stacked copies, sparse tangents), the default;
* :mod:`~Counting.detection.first_derivative`: the variants ``upper`` and ``kmeans``;
* :mod:`~Counting.detection.detector`: :func:`detect_shapes`, which runs any of them, and
  :func:`detect_typed`, the same once per output (shapes told apart by type);
* :mod:`~Counting.detection.groups`: :class:`Group`, :class:`Detections`, thresholds;
* :mod:`~Counting.detection.scoring` and :mod:`~Counting.detection.pictures`: shared by every
  method.

A new method: a module here that returns a list of :class:`Group`, a name in ``METHODS`` and a
branch in :func:`detect_shapes`. The command line is ``python -m Counting.detect``.
"""
from Counting.detection.accelerator import SecondDerivativeRows  # NOQA
from Counting.detection.accelerator import Support  # NOQA
from Counting.detection.accelerator import SupportError  # NOQA
from Counting.detection.detector import detect_shapes  # NOQA
from Counting.detection.detector import detect_typed  # NOQA
from Counting.detection.first_derivative import KMEANS_SPACES  # NOQA
from Counting.detection.first_derivative import kmeans  # NOQA
from Counting.detection.first_derivative import kmeans_middle  # NOQA
from Counting.detection.groups import AUTO_LEVELS  # NOQA
from Counting.detection.groups import AUTO_RULES  # NOQA
from Counting.detection.groups import DEFAULT_AUTO_RULE  # NOQA
from Counting.detection.groups import auto_threshold  # NOQA
from Counting.detection.groups import DEFAULT_THRESHOLD  # NOQA
from Counting.detection.groups import Detections  # NOQA
from Counting.detection.groups import Group  # NOQA
from Counting.detection.groups import mask_box  # NOQA
from Counting.detection.groups import METHODS  # NOQA
from Counting.detection.groups import SecondDerivativeError  # NOQA
from Counting.detection.groups import SMOOTH_ACTIVATIONS  # NOQA
from Counting.detection.pictures import boxes_picture  # NOQA
from Counting.detection.pictures import write_pictures  # NOQA
from Counting.detection.scoring import box_iou  # NOQA
from Counting.detection.scoring import combine_scores  # NOQA
from Counting.detection.scoring import match_boxes  # NOQA
from Counting.detection.scoring import matched_flags  # NOQA
from Counting.detection.scoring import score_boxes  # NOQA

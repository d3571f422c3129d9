"""``python -m Counting.bench --out results/bench`` (``make bench``), see
:mod:`Counting.bench.report`."""
import sys

from Counting.bench.report import main

sys.exit(main())

"""``python -m Friendly.bench``: :func:`Friendly.bench.networks.main`."""
from Friendly.bench.networks import main

main()

"""Friendly's custom links (thesis chapter 3): parameters around :mod:`Friendly.functions`."""
from Friendly.links.angular import Angular  # NOQA
from Friendly.links.elastic_sigmoid import ElasticSigmoid  # NOQA
from Friendly.links.pairwise_difference import PairwiseDifference  # NOQA
from Friendly.links.pairwise_difference_pairs import PairwiseDifferencePairs  # NOQA

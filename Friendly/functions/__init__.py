"""Friendly's custom functions (thesis chapter 3), each a hand-written ``FunctionNode``."""
from Friendly.functions.angular import Angular  # NOQA
from Friendly.functions.angular import angular  # NOQA
from Friendly.functions.elastic_sigmoid import elastic_sigmoid  # NOQA
from Friendly.functions.elastic_sigmoid import ElasticSigmoid  # NOQA
from Friendly.functions.pairwise_difference import pairwise_difference  # NOQA
from Friendly.functions.pairwise_difference import PairwiseDifference  # NOQA
from Friendly.functions.pairwise_difference import PairwiseDifferenceGrad  # NOQA
from Friendly.functions.pairwise_difference_pairs import pairwise_difference_pairs  # NOQA
from Friendly.functions.pairwise_difference_pairs import PairwiseDifferencePairs  # NOQA
from Friendly.functions.pairwise_difference_pairs import PairwiseDifferencePairsGrad  # NOQA

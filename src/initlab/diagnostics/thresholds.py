"""Every threshold a verdict uses, in one place (documented in the README)."""

DEAD_FRACTION = 0.5  # a layer is flagged when at least this fraction of its units is dead
SATURATION_EPS = 0.02  # tanh |a| > 1 - eps, sigmoid a < eps or a > 1 - eps count as saturated
SATURATED_FRACTION = 0.5  # a layer is flagged when at least this fraction of its outputs is saturated
VANISH_RATIO = 1e-2  # last/first hidden activation std, or first/last output-gradient norm, below this
EXPLODE_RATIO = 1e2  # ... or above this
MIN_LAYERS_FOR_DEPTH_VERDICTS = 3  # vanishing/exploding need at least this many weighted layers

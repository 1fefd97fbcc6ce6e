"""Every threshold a verdict uses, in one place (the README's doctor section lists them).

A verdict is decided by these numbers applied to measurements of one forward and one
backward pass, never by layer or activation names.

- ``dead_units``: in some hidden layer at least ``DEAD_FRACTION`` of the units output exactly
  0 for every input of the batch (and every spatial position, for a conv channel), behind an
  activation in ``DEAD_ACTIVATIONS``: one whose derivative is 0 wherever its output is 0, so
  the unit passes no gradient. (A tanh unit that outputs 0 still has derivative 1: not dead.)
- ``symmetry``: some hidden layer has fewer distinct units than units; two units are the same
  when every incoming weight and the bias agree within ``SYMMETRY_TOL * (1 + max|w|)``.
- ``saturation``: in some hidden layer at least ``SATURATED_FRACTION`` of the tanh/sigmoid
  outputs lie within ``SATURATION_EPS`` of a limit (|tanh| > 1 - eps; sigmoid < eps or > 1 - eps).
- ``vanishing_gradients``: over the hidden weighted layers (at least
  ``MIN_LAYERS_FOR_DEPTH_VERDICTS`` weighted layers in all), the activation std of the last
  hidden layer over the first's, or the back-propagated gradient norm reaching the first over
  the one reaching the last, is below ``VANISH_RATIO``.
- ``exploding_gradients``: one of those two ratios is above ``EXPLODE_RATIO``.
- ``healthy``: none of the above.
"""

DEAD_ACTIVATIONS = frozenset({"relu", "relu6"})  # output 0 implies derivative 0
DEAD_FRACTION = 0.5  # a layer is flagged when at least this fraction of its units is dead
SATURATION_EPS = 0.02  # tanh |a| > 1 - eps, sigmoid a < eps or a > 1 - eps count as saturated
SATURATED_FRACTION = 0.5  # a layer is flagged when at least this fraction of its outputs is saturated
VANISH_RATIO = 1e-2  # last/first hidden activation std, or first/last output-gradient norm, below this
EXPLODE_RATIO = 1e2  # ... or above this
MIN_LAYERS_FOR_DEPTH_VERDICTS = 3  # vanishing/exploding need at least this many weighted layers
SYMMETRY_TOL = 1e-6  # two units agree when every incoming weight and the bias differ by <= this (relative)

"""Every threshold a verdict uses, in one place (the README's doctor section lists them).

A verdict is decided by these numbers applied to measurements of one forward and one
backward pass, never by layer or activation names. What an activation can do (die, saturate)
is measured on the activation itself (``slopes.py``): its slope at the values it was applied to,
and its outputs far out on both sides.

- ``dead_units``: in some hidden layer at least ``DEAD_FRACTION`` of the units are dead: the
  unit's output is exactly 0 *and* the activation's slope is exactly 0, for every input of the
  batch (and every spatial position, for a conv channel), so the unit passes no gradient.
  (A ReLU unit below 0 everywhere is dead; a tanh unit at 0 has slope 1: not dead.)
- ``symmetry``: some hidden layer has fewer distinct units than units; two units are the same
  when their incoming weights and bias agree and their outgoing weights (in the layers that read
  them) agree, each within ``SYMMETRY_TOL`` times the larger of the two units' largest |weight|.
- ``saturation``: in some hidden layer at least ``SATURATED_FRACTION`` of the outputs of an
  activation bounded on both sides (its output is constant far out on both sides: tanh,
  sigmoid, hardtanh, ReLU6) sit where its slope is below ``SATURATION_SLOPE`` times the
  activation's largest slope. (tanh: |a| > 0.98; sigmoid: a < 0.0101 or a > 0.9899; hardtanh
  and ReLU6: at either limit.) Activations unbounded on a side (ReLU, ELU, GELU) are not checked.
- ``vanishing_gradients``: over a depth chain (at least ``MIN_LAYERS_FOR_DEPTH_VERDICTS``
  weighted layers in the model), the activation std of the chain's last layer over its first's,
  or the back-propagated gradient norm reaching the first over the one reaching the last, is
  below ``VANISH_RATIO``. A plain stack has one chain, its hidden weighted layers; a model of
  repeated blocks has one chain per layer role (``h.*.attn.c_attn`` across the blocks), so a
  layer is only ever compared with the same layer of another block. The chain whose ratio is
  the most extreme gives the verdict.
- ``exploding_gradients``: one of those two ratios is above ``EXPLODE_RATIO``.
- ``attention_collapse``: in some attention layer at least ``COLLAPSED_FRACTION`` of the queries
  (over batch and heads) give one key at least ``COLLAPSED_WEIGHT`` of their attention: the
  softmax is saturated at init, so almost no gradient reaches the other keys (attention entropy
  collapse; Zhai et al., 2023, "Stabilizing Transformer Training by Preventing Attention Entropy
  Collapse").
- ``non_finite``: some row's values or gradients hold inf or NaN (or the loss does): no other
  verdict is given about those rows.
- ``healthy``: none of the above.

Fixes: when the weights already have the variance-preserving scale (median weight std within a
factor ``SCALE_MATCH`` of gain/sqrt(fan_in)), the fix names another lever than the init.
"""

DEAD_FRACTION = 0.5  # a layer is flagged when at least this fraction of its units is dead
SATURATION_SLOPE = 0.04  # saturated: slope below this times the activation's largest slope (tanh: |a| > 0.98)
SATURATED_FRACTION = 0.5  # a layer is flagged when at least this fraction of its outputs is saturated
VANISH_RATIO = 1e-2  # last/first hidden activation std, or first/last output-gradient norm, below this
EXPLODE_RATIO = 1e2  # ... or above this
MIN_LAYERS_FOR_DEPTH_VERDICTS = 3  # vanishing/exploding need at least this many weighted layers
SYMMETRY_TOL = 1e-6  # two units agree when every weight differs by <= this times the pair's largest |weight|
SCALE_MATCH = 1.1  # weight std within this factor of the variance-preserving std counts as "already that scale"
COLLAPSED_WEIGHT = 0.9  # a query has collapsed onto one key when that key takes at least this share of its attention
COLLAPSED_FRACTION = 0.5  # an attention layer is flagged when at least this fraction of its queries collapsed

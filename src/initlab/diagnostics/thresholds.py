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
- ``dead_output``: the output layer's weights are all exactly 0 and so is the back-propagated
  gradient of every hidden weighted layer: at init only the output layer learns.
- ``overconfident_output`` (with class targets): the cross-entropy is above ``CHANCE_LOSS_RATIO`` times
  chance (ln K for K classes, ln 2 for one 0/1 output), or at least ``OVERCONFIDENT_FRACTION`` of the
  rows give one class a probability of at least ``CONFIDENT_PROB`` with the cross-entropy at least
  chance (confident and right, a trained net, is no fault).
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

# ---- one table for every judgement of a model's scale (issue 18, "One judgement") -----------------
# diagnose's verdicts read the numbers above; autoinit's report and assert_healthy(), LSUV's warnings,
# coord-check and the lab read these (and the two depth ratios above, as GRADIENT_BAND).

# The band of the gradient norm's change over a model's depth (first layer over last): below it the
# gradient vanishes, above it it explodes. diagnose measures it (VANISH_RATIO, EXPLODE_RATIO); autoinit
# predicts it as chi_1^(n/2) over n layers (chi_1 multiplies the squared gradient norm per layer;
# Schoenholz et al., 2017, "Deep Information Propagation", eq. 5 and section 3).
GRADIENT_BAND = (VANISH_RATIO, EXPLODE_RATIO)
CHI_TOL = 0.05  # |chi_1 - 1| within this: near-critical (autoinit names the scale that reaches it)
LENGTH_SLOPE_TOL = 1.01  # a length-map slope up to this is marginal (relu: exactly 1); above, the fixed point repels

# A measured output std against the one aimed at (autoinit's target, a prediction, LSUV's target):
# the ratio measured/expected must lie in STD_BAND.
STD_BAND = (0.5, 2.0)
# The std of the stream between repeated blocks, or of the signal entering repeated layers (LSUV), may
# spread by at most this factor (max/min) over the blocks: the band's wider side.
STREAM_SPREAD = max(STD_BAND[1], 1.0 / STD_BAND[0])
LSUV_TOL = 0.1  # LSUV iterates until |output variance / target variance - 1| < this (Mishkin & Matas, 2016)

# The output at init (a classifier's readout, measured with class targets).
CONFIDENT_PROB = 0.99  # a row is over-confident when its largest class probability is at least this
OVERCONFIDENT_FRACTION = 0.5  # over-confident readout: at least this fraction of the rows are
CHANCE_LOSS_RATIO = 3.0  # ... or the cross-entropy is above this multiple of chance (ln K for K classes)

# Coordinate check (muP's width check, coordcheck.py). |slope| below FLAT_SLOPE reads "flat". Over
# widths 64..1024 (16x), a slope of 0.2 is a 1.7x change of scale. Measured on examples/coordcheck_mlp.py
# (Adam, 5 steps, 3 seeds, widths 64..1024): muP's modules have |slope| <= 0.07 at lr 1e-3 and <= 0.03 at
# lr 1e-2, with a spread over seeds of <= 0.05; standard parametrization's logits reach 0.80 and its last
# hidden layer 0.44 at lr 1e-3 (theory: up to 1). 0.2 is four seed spreads from 0 and well under the SP
# growth; it was chosen from these measurements, not tuned to a case.
FLAT_SLOPE = 0.2
SLOPE_INTERVAL = 0.9  # each slope's interval over seeds: a two-sided Student-t interval of this level
MIN_WIDTH_SPAN = 4.0  # widths spanning less than this factor (largest/smallest) give a warning: a poorly pinned slope


# diagnose's verdicts that say an init is not healthy: assert_healthy() raises on each (symmetry and
# attention_collapse are verdicts too, about what autoinit does not set: they are reported, not raised on)
UNHEALTHY_VERDICTS = ("non_finite", "dead_units", "saturation", "vanishing_gradients", "exploding_gradients",
                      "dead_output", "overconfident_output")


def in_band(value: float, band: tuple[float, float]) -> bool:
    """``band[0] <= value <= band[1]``, False for nan."""
    return band[0] <= value <= band[1]

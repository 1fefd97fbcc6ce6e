"""How long the symmetry check (distinct_units) takes on big layers, and doctor on a VGG-11-size model.

Prints, for Gaussian weights (float32, as a layer holds them):

* the all-pairs reference and the fast count on a 1024 x 4608 layer (the same count; their time ratio),
* the fast count on VGG-11's first classifier layer, 4096 x 25088 with its 4096 x 4096 outgoing
  weights, random and with all-zero weights (every unit equal: one group of 4096), and with one
  non-zero weight per unit (the projections crowd together: many candidate pairs),
* ``initlab doctor``'s library call (``run_doctor``) on a VGG-11-size CNN (8 convs, classifier
  25088 -> 4096 -> 4096 -> 10) on a batch of 2 images 3 x 224 x 224.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/symmetry_bench.py
    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/symmetry_bench.py --skip-doctor
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from initlab.diagnostics.symmetry import distinct_units, distinct_units_all_pairs, outgoing_rows

VGG11 = textwrap.dedent('''
    from torch import nn

    def vgg11():
        cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                             nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                             nn.Linear(4096, 10))
''')


def _timed(fn, *args, **kw):
    start = time.perf_counter()
    value = fn(*args, **kw)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-doctor", action="store_true", help="Only time distinct_units.")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)

    w = torch.randn(1024, 4608, generator=gen)
    b = torch.randn(1024, generator=gen)
    reader = torch.randn(512, 1024, generator=gen)
    out = [outgoing_rows(reader)]
    old, t_old = _timed(distinct_units_all_pairs, w, b, out)
    new, t_new = _timed(distinct_units, w, b, out)
    print(f"1024 x 4608 (+ 512 x 1024 outgoing): all pairs {old} distinct in {t_old:.2f} s, "
          f"fast {new} in {t_new:.3f} s: x{t_old / t_new:.0f} faster, same count: {old == new}")

    w = torch.randn(4096, 25088, generator=gen) * 0.01
    b = torch.zeros(4096)
    reader = torch.randn(4096, 4096, generator=gen) * 0.01
    out = [outgoing_rows(reader)]
    count, t_big = _timed(distinct_units, w, b, out)
    print(f"4096 x 25088 (+ 4096 x 4096 outgoing), Gaussian: {count} distinct in {t_big:.2f} s")
    count, t_zero = _timed(distinct_units, torch.zeros_like(w), b, [torch.zeros_like(out[0])])
    print(f"4096 x 25088 (+ 4096 x 4096 outgoing), all zeros: {count} distinct in {t_zero:.2f} s")

    one_hot = torch.zeros_like(w)
    one_hot[torch.arange(4096), torch.randint(0, 25088, (4096,), generator=gen)] = 0.5
    count, t_hot = _timed(distinct_units, one_hot, b)
    print(f"4096 x 25088, one weight 0.5 per unit (keys crowded): {count} distinct in {t_hot:.2f} s")

    if args.skip_doctor:
        return
    from initlab.diagnostics.doctor import run_doctor

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vgg.py"
        path.write_text(VGG11)
        result, t_doc = _timed(run_doctor, f"{path}:vgg11", "3,224,224", batch=2)
        print(f"doctor on a VGG-11-size CNN (batch 2 x 3 x 224 x 224): {t_doc:.1f} s, "
              f"verdicts {result.before.codes}, {len(result.before.layers)} rows")


if __name__ == "__main__":
    main()

"""initlab's autoinit side by side with its peer, anyinit (issue 10). Not a test.

Rows: 50-layer width-256 MLPs (tanh, relu, gelu, x*sigmoid(x) written by hand, silu, and a custom
activation x*tanh(softplus(x)) written by hand) on sklearn's digits upsampled to 16x16 = 256
features; a VGG-style CNN without BatchNorm (ReLU(inplace=True), as torchvision's VGG); a
TransformerEncoder over the 16 image rows; a GPT-2 from a small config, as a language model over
the 64 pixel intensities (17 tokens); a residual MLP of 50 blocks without normalization.

Methods: torch's default init; initlab ``autoinit`` analytic and empirical; anyinit analytic and
empirical; the best named scheme of initlab's catalog (lowest loss among he_normal,
glorot_normal, lecun_normal, orthogonal through ``apply_init``).

Columns, all measured here, on a held-out batch the initializers never see: the output std of
every weight layer (Linear, Conv, GPT-2's Conv1D, attention) in forward order or, where a residual
stream runs without normalization (the residual MLP, GPT-2's pre-LN blocks), of the weight layers
outside the blocks and every block's output (the stream): last/first and max/min; the time the
initializer took; the training loss (whole training set) after 50 Adam steps (lr 1e-3, batch 64).
The same two ratios are also given after the activation modules (where the model has them;
anyinit aims its scales there, LSUV at the weight layers' outputs). Chance: ln 10 = 2.30 (ln 17 = 2.83 for
GPT-2). ``flag``: for initlab's rows, whether its report
flags a problem (it should on every row that is not flat: max/min > 2 or last/first outside
[0.5, 2]).

Run: ``PYTHONPATH=src python bench/autoinit_bench.py`` (``--quick``: three rows, depth 20;
``--rows mlp-tanh,cnn``; ``--out table.md``; ``--figure docs/img/lsuv-depth.png``: the
depth profile of the tanh MLP and the residual MLP only). anyinit comes from bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

STEPS, LR, BATCH, SEED = 50, 1e-3, 64, 0
NAMED = ("he_normal", "glorot_normal", "lecun_normal", "orthogonal")
METHODS = ("torch default", "initlab analytic", "initlab empirical", "anyinit analytic", "anyinit empirical",
           "best named")


# ----------------------------------------------------------------------------- data
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from initlab.datasets.bundled import digits

    X, y = digits(seed=SEED)
    X = torch.as_tensor(X)
    return X, torch.as_tensor(y)


def _upsampled() -> tuple[torch.Tensor, torch.Tensor]:
    """(1797, 1, 16, 16) standardized images, labels."""
    X, y = _digits()
    img = F.interpolate(X.reshape(-1, 1, 8, 8), size=(16, 16), mode="bilinear", align_corners=False)
    img = (img - img.mean()) / img.std()
    return img, y


# ----------------------------------------------------------------------------- models
class XSigmoid(nn.Module):
    """x * sigmoid(x), written by hand (a custom module, not nn.SiLU)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class Mish(nn.Module):
    """A custom activation: x * tanh(softplus(x)) (Misra, 2019), written by hand."""

    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


ACTS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "x*sigmoid(x)": XSigmoid, "silu": nn.SiLU,
    "custom x*tanh(softplus(x))": Mish,
}


def mlp(act: str, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(256, 256), ACTS[act]()]
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(256, 10))


def cnn() -> nn.Module:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
                         nn.MaxPool2d(2), *block(64, 128), *block(128, 128), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128 * 2 * 2, 256), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(256, 10))


class RowTransformer(nn.Module):
    """The 16 image rows as tokens: Linear(16, 64), a 4-layer TransformerEncoder, mean pool, Linear(64, 10)."""

    def __init__(self, layers: int = 4):
        super().__init__()
        self.embed = nn.Linear(16, 64)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), layers,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.encoder(self.embed(x.reshape(x.shape[0], 16, 16)))  # (B, 16, 64)
        return self.head(h.mean(dim=1))


class Block(nn.Module):
    """x + W2 relu(W1 x), no normalization."""

    def __init__(self, width: int = 256):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def resmlp(depth: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(256, 256), *[Block() for _ in range(depth)], nn.Linear(256, 10))


def gpt2(layers: int = 4) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=layers, n_embd=64, n_head=4, vocab_size=17, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


# ----------------------------------------------------------------------------- rows
class Row:
    """A model factory and its data: train inputs/targets, the init example, the held-out probe batch."""

    def __init__(self, name: str, build: Callable[[], nn.Module], lm: bool = False):
        self.name, self.build, self.lm = name, build, lm
        img, y = _upsampled()
        if lm:
            X, _ = _digits()
            tokens = torch.round(X * 16).long()  # (N, 64) pixel intensities 0..16
            self.train_x, self.train_y = tokens[:1500], None
            self.example, self.probe = tokens[:256], tokens[1500:1756]
            self.chance = math.log(17)
        else:
            self.train_x, self.train_y = img[:1500], y[:1500]
            self.example, self.probe = img[:256], img[1500:1756]
            self.chance = math.log(10)

    def call(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x).logits if self.lm else model(x)

    def feed(self, x: torch.Tensor) -> Any:
        return {"input_ids": x} if self.lm else x

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.lm:
            return model(input_ids=x, labels=x).loss
        return F.cross_entropy(model(x), y)


def rows(quick: bool) -> list[Row]:
    depth = 20 if quick else 50
    out = [Row(f"mlp-{act}", (lambda act=act: mlp(act, depth))) for act in ACTS]
    out += [Row("cnn (VGG-style, no BN)", cnn), Row("transformer-encoder", RowTransformer),
            Row("gpt2", gpt2, lm=True), Row(f"resmlp ({depth} blocks)", lambda: resmlp(depth))]
    if quick:
        keep = ("mlp-tanh", "mlp-relu", "cnn (VGG-style, no BN)")
        out = [r for r in out if r.name in keep]
    return out


# ----------------------------------------------------------------------------- measurements
_ACT_TYPES = (nn.Tanh, nn.ReLU, nn.GELU, nn.SiLU, XSigmoid, Mish)


def _act_probes(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Activation modules (transformers' GELU classes too); functional activations are not seen."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, _ACT_TYPES) or type(m).__name__.endswith(("GELUActivation", "GELU"))]


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Blocks whose output is a residual stream no normalization follows (the residual MLP; GPT-2, pre-LN)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, Block) or type(m).__name__ == "GPT2Block"]


def _probes(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every weight layer; in a net with an unnormalized residual stream, the weight layers outside
    the blocks (stem, head) and each block's output (the stream).

    A residual block's inner layers are not on the path the signal takes through depth (the
    stream is), and a branch may rightly end small (GPT-2's 1/sqrt(N) residual scaling).
    The order in the table is the order of the forward calls.
    """
    blocks = _blocks(model)
    if blocks:
        inside = {id(m) for _, b in blocks for m in b.modules()}
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) not in inside]
        return layers + blocks
    out = []
    for name, m in model.named_modules():
        if name.endswith("out_proj"):
            continue  # measured at its attention's output
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.MultiheadAttention)) or type(m).__name__ == "Conv1D":
            out.append((name, m))
    return out


@torch.no_grad()
def profile(row: Row, model: nn.Module, probes=_probes) -> list[float]:
    """Output std of the probed layers on the held-out batch, in forward order, in eval mode."""
    stds: dict[str, float] = {}
    order: list[str] = []

    def hook(name):
        def f(_m, _i, out):
            t = out[0] if isinstance(out, tuple) else out
            if name not in stds:
                stds[name] = float(t.detach().float().std())  # now: an in-place activation comes next
                order.append(name)
        return f
    handles = [m.register_forward_hook(hook(n)) for n, m in probes(model)]
    training, fastpath = model.training, torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused path skips submodule hooks
    try:
        row.call(model, row.probe)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(training)
        for h in handles:
            h.remove()
    return [stds[n] for n in order]


def spread(row: Row, model: nn.Module, probes=_probes) -> tuple[float, float]:
    """(last/first, max/min) of :func:`profile`."""
    values = profile(row, model, probes)
    if not values or min(values) <= 0 or not all(map(math.isfinite, values)):
        return math.nan, math.nan
    return values[-1] / values[0], max(values) / min(values)


def train_loss(row: Row, model: nn.Module) -> float:
    """Whole-training-set loss after STEPS Adam steps on minibatches of BATCH (fixed order)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    n = row.train_x.shape[0]
    for _ in range(STEPS):
        idx = torch.randint(0, n, (BATCH,), generator=gen)
        y = row.train_y[idx] if row.train_y is not None else None
        loss = row.loss(model, row.train_x[idx], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        value = float(row.loss(model, row.train_x, row.train_y))
    return value if math.isfinite(value) else math.nan


# ----------------------------------------------------------------------------- methods
def _initlab(mode: str):
    def run(row: Row, model: nn.Module) -> str:
        try:
            from initlab.autoinit import autoinit
        except ImportError:
            autoinit = None
        if autoinit is None:
            if mode != "empirical":
                raise RuntimeError("initlab.autoinit not available on this branch")
            from initlab.autoinit.empirical import empirical_init

            empirical_init(model, row.feed(row.example), generator=SEED)
            return ""
        report = autoinit(model, row.feed(row.example), mode=mode, generator=SEED)
        problems, warnings = report.problems(), report.warnings
        if not problems and not warnings:
            return "healthy"
        said = [f"{len(problems)} problem(s)"] * bool(problems) + [f"{len(warnings)} warning(s)"] * bool(warnings)
        return "flags: " + ", ".join(said)
    return run


def _anyinit(mode: str):
    def run(row: Row, model: nn.Module) -> str:
        import anyinit

        anyinit.initialize(model, mode, row.example, seed=SEED)
        return ""
    return run


def _named(name: str):
    def run(row: Row, model: nn.Module) -> str:
        from initlab import apply_init

        apply_init(model, name, generator=SEED)
        return ""
    return run


def _default(row: Row, model: nn.Module) -> str:
    return ""


def measure(row: Row, init: Callable[[Row, nn.Module], str]) -> dict[str, Any]:
    torch.manual_seed(SEED)  # torch's default init draws from the global generator
    model = row.build()
    start = time.perf_counter()
    try:
        flag = init(row, model)
    except Exception as err:  # a peer that crashes is a result, shown in the table
        return {"error": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:60]}"}
    seconds = time.perf_counter() - start
    last_first, max_min = spread(row, model)
    act_last_first, act_max_min = spread(row, model, _act_probes)
    return {"last/first": last_first, "max/min": max_min, "act": (act_last_first, act_max_min), "seconds": seconds,
            "loss": train_loss(row, model), "flag": flag}


def bench_row(row: Row, seconds: float) -> list[tuple[str, dict[str, Any]]]:
    start = time.perf_counter()
    results = []
    plan: list[tuple[str, Callable]] = [("torch default", _default), ("initlab analytic", _initlab("analytic")),
                                        ("initlab empirical", _initlab("empirical")),
                                        ("anyinit analytic", _anyinit("analytic")),
                                        ("anyinit empirical", _anyinit("empirical"))]
    for method, init in plan:
        if time.perf_counter() - start > seconds:
            results.append((method, {"error": f"skipped: row time limit {seconds:g} s"}))
            continue
        results.append((method, measure(row, init)))
    best = None
    for name in NAMED:
        if time.perf_counter() - start > seconds:
            break
        r = measure(row, _named(name))
        if "error" not in r and (best is None or r["loss"] < best[1]["loss"]):
            best = (f"best named: {name}", r)
    results.append(best or ("best named", {"error": "skipped: row time limit"}))
    return results


def _num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.2e}"


def table(all_results: list[tuple[Row, list[tuple[str, dict[str, Any]]]]]) -> str:
    lines = ["| model | method | last/first std | max/min std | after activations: last/first, max/min | "
             "init time (s) | loss after 50 Adam steps | initlab report |",
             "|---|---|---|---|---|---|---|---|"]
    for row, results in all_results:
        for method, r in results:
            if "error" in r:
                lines.append(f"| {row.name} | {method} | {r['error']} | | | | | |")
                continue
            act = "-" if math.isnan(r["act"][0]) else f"{_num(r['act'][0])}, {_num(r['act'][1])}"
            lines.append(f"| {row.name} | {method} | {_num(r['last/first'])} | {_num(r['max/min'])} | {act} | "
                         f"{r['seconds']:.3f} | {_num(r['loss'])} (chance {row.chance:.2f}) | {r['flag']} |")
    return "\n".join(lines)


FIGURE_METHODS = (("torch default", _default, "#8c8c8c", "-"), ("best named: he_normal", _named("he_normal"), None, "-"),
                  ("anyinit analytic", _anyinit("analytic"), "#e0802c", "-"),
                  ("anyinit empirical", _anyinit("empirical"), "#8172b2", "--"),
                  ("initlab analytic", _initlab("analytic"), "#3b6fb6", "-"),
                  ("initlab empirical (graph LSUV)", _initlab("empirical"), "#c44e52", "--"))


def figure(path: str, depth: int) -> None:
    """Output std of every weight layer (and residual block) across depth: the tanh MLP and the residual MLP."""
    import matplotlib

    matplotlib.use("Agg")  # a script, not the library: no display needed
    from matplotlib.figure import Figure

    from initlab.plots.style import init_color, save, style

    panels = [(Row(f"{depth}-layer tanh MLP", lambda: mlp("tanh", depth)), _probes,
               "layer (Linear outputs, pre-activation)"),
              (Row(f"residual MLP, {depth} blocks, no normalization", lambda: resmlp(depth)), _blocks,
               "block (its output: the residual stream)")]  # what _probes measures there, minus stem and head
    with style():
        fig = Figure(figsize=(11, 4.2))
        axes = fig.subplots(1, 2)
        for ax, (row, probes, xlabel) in zip(axes, panels, strict=False):
            for label, init, color, dash in FIGURE_METHODS:
                torch.manual_seed(SEED)
                model = row.build()
                try:
                    init(row, model)
                except Exception as err:
                    print(f"figure: {label} on {row.name}: {type(err).__name__}: {err}")
                    continue
                stds = profile(row, model, probes)
                if max(stds) > 100:
                    label += f" (leaves the plot: {max(stds):.0e})"
                ax.plot(range(1, len(stds) + 1), stds, dash, label=label, color=color or init_color("he_normal"), lw=1.8)
            ax.set_yscale("log")
            ax.set_ylim(0.03, 30)
            ax.set_title(row.name)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("output std on held-out digits")
            ax.axhline(1.0, color="black", lw=0.6, ls=":")
        axes[0].legend(fontsize=8, loc="lower right")
        axes[1].legend(fontsize=8, loc="lower right")
        fig.suptitle("Signal across depth after each initializer")
        save(fig, path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three rows, depth 20")
    parser.add_argument("--rows", default="", help="comma-separated row names (prefixes) to run")
    parser.add_argument("--row-seconds", type=float, default=300.0, help="time limit per row")
    parser.add_argument("--out", default="", help="also write the markdown table here")
    parser.add_argument("--figure", default="", help="only draw the depth figure (PNG) and exit")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.figure:
        figure(args.figure, 20 if args.quick else 50)
        return
    selected = rows(args.quick)
    if args.rows:
        wanted = [w.strip() for w in args.rows.split(",")]
        selected = [r for r in selected if any(r.name.startswith(w) for w in wanted)]
    all_results = []
    for row in selected:
        start = time.perf_counter()
        all_results.append((row, bench_row(row, args.row_seconds)))
        print(f"# {row.name}: {time.perf_counter() - start:.0f} s", flush=True)
    text = table(all_results)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

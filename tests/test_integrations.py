"""Monitor inside the real trainers: Lightning's Trainer and Hugging Face's Trainer, a few CPU steps each."""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from initlab._validation import InitlabError

MAX_STEPS, EVERY = 5, 2
RECORDED = list(range(1, MAX_STEPS + 1, EVERY))  # steps 1, 3, 5: step 1 and every EVERY-th after


def _check_files(paths: dict, folder, layers: list[str]) -> dict:
    assert set(paths) == {"json", "heatmap", "histograms"}
    for key, name in (("json", "monitor.json"), ("heatmap", "monitor_heatmap.png"), ("histograms", "monitor_histograms.png")):
        assert paths[key] == folder / name and paths[key].stat().st_size > 1000
    saved = json.loads((folder / "monitor.json").read_text())
    assert saved["every"] == EVERY and saved["steps"] == RECORDED
    assert list(saved["layers"]) == layers
    return saved


# -- Lightning -----------------------------------------------------------------------------------

def _lightning_module(call_root: bool = True):
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self(x) if call_root else self.net(x)
            return nn.functional.mse_loss(out, y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny()


def _loader():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 8, generator=gen)
    y = X[:, :1] * 2.0
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8, shuffle=False)


def _pl_trainer(callback, accumulate: int = 1):
    import lightning.pytorch as pl

    return pl.Trainer(accelerator="cpu", devices=1, max_steps=MAX_STEPS, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                      accumulate_grad_batches=accumulate)


@pytest.mark.slow  # Lightning's Trainer fits a model (15 s)
def test_lightning_callback_records_every_n_steps_and_writes_files(tmp_path):
    import lightning.pytorch as pl

    from initlab.integrations.lightning import MonitorCallback

    torch.manual_seed(0)
    model = _lightning_module()
    callback = MonitorCallback(tmp_path / "mon", every=EVERY)
    assert isinstance(callback, pl.Callback)
    before = model.net[0].weight.detach().clone()
    _pl_trainer(callback).fit(model, _loader())
    monitor = callback.monitor
    assert monitor.steps == RECORDED
    assert monitor.layer_names == ["net.0", "net.2"]  # the Linear+Tanh row and the output layer
    grads = monitor.series("grad_norm")
    assert grads.shape == (2, len(RECORDED)) and (grads > 0).all()
    ratio = monitor.series("update_ratio")
    assert (ratio > 0).all()  # every recorded step moved the weights
    assert not torch.equal(before, model.net[0].weight)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0  # hooks removed at the end
    saved = _check_files(callback.paths, tmp_path / "mon", ["net.0", "net.2"])
    assert saved["records"][0]["layers"]["net.0"]["grad_norm"] == pytest.approx(float(grads[0, 0]))


def test_lightning_callback_names_the_fix_when_training_step_skips_forward(tmp_path):
    from initlab.integrations.lightning import MonitorCallback

    model = _lightning_module(call_root=False)
    with pytest.raises(InitlabError, match=r"MonitorCallback\(module=\.\.\.\)"):
        _pl_trainer(MonitorCallback(tmp_path / "mon", every=EVERY)).fit(model, _loader())
    # naming the submodule that training_step calls records it; steps are optimizer steps, so with
    # gradient accumulation over 2 batches the same steps 1, 3, 5 are recorded out of 10 batches
    callback = MonitorCallback(tmp_path / "mon2", every=EVERY, module="net")
    trainer = _pl_trainer(callback, accumulate=2)
    trainer.fit(_lightning_module(call_root=False), _loader())
    assert trainer.global_step == MAX_STEPS and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 2 * MAX_STEPS
    assert callback.monitor.steps == RECORDED and callback.monitor.layer_names == ["0", "2"]
    assert (callback.monitor.series("grad_norm") > 0).all()


# -- Hugging Face ----------------------------------------------------------------------------------

class _Regressor(nn.Module):
    """A small torch model in the Trainer's protocol: keyword inputs, returns {"loss": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(8, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x, labels=None):
        pred = self.out(torch.relu(self.hidden(x)))
        return {"loss": nn.functional.mse_loss(pred, labels), "logits": pred}


class _Rows(torch.utils.data.Dataset):
    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.X = torch.randn(64, 8, generator=gen)
        self.y = self.X[:, :1] * 2.0

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return {"x": self.X[i], "labels": self.y[i]}


def _hf_train_with_trainer(model, callback, tmp_path) -> None:
    """The real ``transformers.Trainer`` (it needs ``accelerate``)."""
    import transformers

    transformers.Trainer(model=model, args=_hf_args(tmp_path), train_dataset=_Rows(), callbacks=[callback]).train()


def _hf_args(tmp_path):
    import transformers

    return transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=MAX_STEPS, per_device_train_batch_size=8,
                                          report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
                                          disable_tqdm=True, learning_rate=1e-2, seed=0)


def _hf_train_with_handler(model, callback, tmp_path) -> None:
    """transformers' own CallbackHandler, TrainerState and TrainerControl, driven in the order of the
    events in ``Trainer._inner_training_loop`` (transformers 5): clip, on_pre_optimizer_step,
    optimizer.step, on_optimizer_step, zero_grad, global_step += 1, on_step_end."""
    import transformers
    from transformers.trainer_callback import CallbackHandler, TrainerControl, TrainerState

    # TrainingArguments cannot be built without accelerate either; the callback reads none of its fields
    args = SimpleNamespace(output_dir=str(tmp_path / "hf"), max_steps=MAX_STEPS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the handler warns that DefaultFlowCallback (logging, saving) is absent
    try:
        handler = CallbackHandler([callback], model, None, opt, None)
    finally:
        transformers.logging.set_verbosity(verbosity)
    state, control = TrainerState(max_steps=MAX_STEPS), TrainerControl()
    assert isinstance(state, transformers.TrainerState)
    rows = _Rows()
    control = handler.on_train_begin(args, state, control)
    for step in range(MAX_STEPS):
        control = handler.on_step_begin(args, state, control)
        batch = {"x": rows.X[8 * step: 8 * step + 8], "labels": rows.y[8 * step: 8 * step + 8]}
        model(**batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        control = handler.on_pre_optimizer_step(args, state, control)
        opt.step()
        control = handler.on_optimizer_step(args, state, control)
        model.zero_grad()
        state.global_step += 1
        control = handler.on_step_end(args, state, control)
    handler.on_train_end(args, state, control)


def _has_accelerate() -> bool:
    return importlib.util.find_spec("accelerate") is not None


@pytest.mark.parametrize("drive", [
    pytest.param(_hf_train_with_trainer, id="Trainer",
                 marks=pytest.mark.skipif(not _has_accelerate(), reason="transformers.Trainer needs accelerate")),
    pytest.param(_hf_train_with_handler, id="CallbackHandler"),
])
def test_hf_callback_records_every_n_steps_and_writes_files(tmp_path, drive):
    import transformers

    from initlab.integrations.hf import MonitorCallback

    torch.manual_seed(0)
    model = _Regressor()
    callback = MonitorCallback(tmp_path / "mon", every=EVERY)
    assert isinstance(callback, transformers.TrainerCallback)
    drive(model, callback, tmp_path)
    monitor = callback.monitor
    assert monitor.steps == RECORDED
    assert monitor.layer_names == ["hidden", "out"]
    assert monitor.layer_info["hidden"]["activation"] == "relu"  # the functional relu is paired with its layer
    grads = monitor.series("grad_norm")
    assert grads.shape == (2, len(RECORDED)) and (grads > 0).all()  # read before the Trainer zeroes them
    assert (monitor.series("update_ratio") > 0).all()
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    _check_files(callback.paths, tmp_path / "mon", ["hidden", "out"])


# -- missing frameworks ------------------------------------------------------------------------------

@pytest.mark.parametrize("module, package, extra", [
    ("initlab.integrations.lightning", "lightning", "lightning"),
    ("initlab.integrations.hf", "transformers", "hf"),
])
def test_missing_framework_is_one_line_naming_the_extra(monkeypatch, module, package, extra):
    real_import = builtins.__import__

    def fail(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fail)
    adapter = importlib.import_module(module)
    monkeypatch.delitem(vars(adapter), "MonitorCallback", raising=False)  # built by an earlier test: build it again
    with pytest.raises(InitlabError) as err:
        adapter.MonitorCallback  # noqa: B018
    message = str(err.value)
    assert "\n" not in message and f"pip install 'initlab[{extra}]'" in message and package in message

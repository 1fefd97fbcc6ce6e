"""Training: the single-model Trainer (Keras ``fit`` semantics) and optimizers."""

from .batched import BatchedTrainer
from .optim import DEFAULT_LR, OPTIMIZERS, loss_for, make_optimizer
from .order import minibatch_order
from .trainer import Callback, Trainer, accuracy, as_tensors

__all__ = ["Trainer", "BatchedTrainer", "Callback", "make_optimizer", "loss_for", "accuracy", "as_tensors", "minibatch_order",
           "OPTIMIZERS", "DEFAULT_LR"]

"""initlab for Keras 3 models on the torch backend (``pip install 'initlab[keras]'``, ``KERAS_BACKEND=torch``).

>>> import os; os.environ["KERAS_BACKEND"] = "torch"        # before keras is imported
>>> import initlab.keras
>>> layer = keras.layers.Dense(10, kernel_initializer=initlab.keras.initializer("he_normal", seed=0))
>>> model.fit(X, y, callbacks=[monitor := initlab.keras.Monitor(every=10)])
>>> initlab.diagnose(model, X, y)                           # Keras models go through diagnose too

Importing this module without Keras 3, or with Keras on another backend, raises one line saying
what to install or set. ``import initlab`` never imports it.
"""

from __future__ import annotations

from .integrations.keras import (
    Initializer,
    KerasDiagnosis,
    KerasRecorder,
    KerasUnavailable,
    Monitor,
    apply_init_keras,
    diagnose_keras,
    initializer,
)

diagnose = diagnose_keras  # initlab.diagnose(keras_model, ...) comes here too
apply_init = apply_init_keras  # likewise initlab.apply_init

__all__ = ["initializer", "Initializer", "Monitor", "diagnose", "apply_init", "KerasDiagnosis", "KerasRecorder", "KerasUnavailable"]

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
    Initializer, KerasDiagnosis, KerasRecorder, KerasUnavailable, Monitor, diagnose_keras, initializer,
)

diagnose = diagnose_keras

__all__ = ["initializer", "Initializer", "Monitor", "diagnose", "KerasDiagnosis", "KerasRecorder", "KerasUnavailable"]

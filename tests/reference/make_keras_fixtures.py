"""Make the Keras 3 fixtures of ``tests/test_keras.py`` (tests/data/formats/keras_*).

Development time only (Keras is not a gradflow dependency; torch is its backend here)::

    pip install keras h5py
    KERAS_BACKEND=torch python tests/reference/make_keras_fixtures.py

Each model is built in float64 (``keras.config.set_floatx("float64")``, and float64 type
promotion kept: see the comment in :func:`main`) and its weights are
set explicitly from a seeded NumPy generator (known weights, uniform in +-0.6), then saved
with ``model.save`` (``.keras``: config.json + model.weights.h5) and ``model.save_weights``
(``.weights.h5``). Keras' own outputs ``model.predict(x)`` for the inputs ``x (B, T, d)``
(batch first, as Keras takes them) go in ``keras_{name}_io.npz``; the outputs are the last
recurrent layer's sequence output (``return_sequences=True``), so every step is compared.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "formats"
T, B, D = 6, 2, 3


def main() -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers

    keras.config.set_floatx("float64")
    # Keras follows JAX's x64-disabled promotion on non-TensorFlow backends: keras.ops.matmul of
    # two float64 tensors returns float32 (keras/src/backend/common/dtypes.py,
    # BIT64_TO_BIT32_DTYPE). Keep float64, as the TensorFlow backend does, so that Keras' own
    # outputs are float64-accurate (without this, SimpleRNN and GRU(reset_after=False) outputs
    # carry ~1e-7 errors; LSTM and GRU(reset_after=True) use torch's native kernels either way).
    from keras.src.backend.common import dtypes

    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    OUT.mkdir(parents=True, exist_ok=True)
    seq = {"return_sequences": True}

    def models() -> dict[str, keras.Model]:
        inp = keras.Input((T, D))
        stacked = layers.LSTM(4, name="enc1", **seq)(inp)
        stacked = layers.Dropout(0.1)(stacked)
        stacked = layers.LSTM(3, name="enc2", **seq)(stacked)
        head = layers.Dense(1, name="head")(stacked)
        bi_in = keras.Input((T, D))
        bi = layers.Bidirectional(layers.GRU(3, **seq), name="bi")(bi_in)
        bi = layers.SimpleRNN(2, name="top", **seq)(bi)
        return {
            "lstm_stack": keras.Model(inp, head),
            "gru_after": keras.Sequential([keras.Input((T, D)), layers.GRU(4, **seq)]),
            "gru_before": keras.Sequential(
                [keras.Input((T, D)), layers.GRU(4, reset_after=False, **seq)]
            ),
            "simple_relu": keras.Sequential(
                [keras.Input((T, D)), layers.SimpleRNN(4, activation="relu", **seq)]
            ),
            "lstm_nobias": keras.Sequential(
                [keras.Input((T, D)), layers.LSTM(3, use_bias=False, **seq)]
            ),
            "bi_gru_rnn": keras.Model(bi_in, bi),
        }

    rng = np.random.default_rng(2024)
    for name, model in models().items():
        for layer in model.layers:
            layer.set_weights([rng.uniform(-0.6, 0.6, size=w.shape) for w in layer.get_weights()])
        x = rng.normal(size=(B, T, D))
        if name == "lstm_stack":  # the outputs of enc2, below the Dense head
            probe = keras.Model(model.inputs, model.get_layer("enc2").output)
            y = probe.predict(x, verbose=0)
        else:
            y = model.predict(x, verbose=0)
        model.save(OUT / f"keras_{name}.keras")
        if name in ("lstm_stack", "bi_gru_rnn"):  # the .weights.h5 tests use these two
            model.save_weights(OUT / f"keras_{name}.weights.h5")
        np.savez(OUT / f"keras_{name}_io.npz", inputs=x, outputs=np.asarray(y, dtype=np.float64))
        print(name, [type(layer).__name__ for layer in model.layers], y.shape)


if __name__ == "__main__":
    main()

"""Whole trained models from PyTorch, Keras 3 and ONNX files, as one description.

:func:`load_model` reads any supported file into a :class:`Model` (layers of catalogue cells,
one or two directions each, parameters in gradflow's canonical names); :func:`describe_weights`
lists what a file holds and the ``gradflow analyze`` command that would analyse it. Keras needs
the ``keras`` extra (h5py), ONNX the ``onnx`` extra; neither TensorFlow, Keras nor an ONNX
runtime is ever imported.
"""

from .load import LayerInfo as LayerInfo
from .load import ModuleInfo as ModuleInfo
from .load import WeightsDescription as WeightsDescription
from .load import analyze_command as analyze_command
from .load import describe_weights as describe_weights
from .load import load_model as load_model
from .load import model_from_state_dict as model_from_state_dict
from .model import Direction as Direction
from .model import Layer as Layer
from .model import Model as Model
from .model import single_layer_model as single_layer_model

__all__ = [
    "Direction",
    "Layer",
    "LayerInfo",
    "Model",
    "ModuleInfo",
    "WeightsDescription",
    "analyze_command",
    "describe_weights",
    "load_model",
    "model_from_state_dict",
    "single_layer_model",
]

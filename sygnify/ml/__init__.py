"""Real-time and batch model serving (``RealTimeML``).

>>> ml = RealTimeML()
>>> _ = ml.register("score", backend="callable", fn=lambda X: X.sum(axis=1), features=["a", "b"])
>>> ml.predict("score", {"a": [1.0], "b": [2.0]}).column("prediction").to_pylist()
[3.0]
"""

from sygnify.ml.backends import MODEL_BACKENDS, BackendContext, BackendOutput, ModelBackend
from sygnify.ml.metrics import ModelMetrics
from sygnify.ml.realtime import Prediction, RealTimeML
from sygnify.ml.signature import Feature, Signature
from sygnify.ml.stream import PredictionStream
from sygnify.streams.windows import Count, Hopping, Session, Sliding, Tumbling

__all__ = [
    "MODEL_BACKENDS",
    "BackendContext",
    "BackendOutput",
    "Count",
    "Feature",
    "Hopping",
    "ModelBackend",
    "ModelMetrics",
    "Prediction",
    "PredictionStream",
    "RealTimeML",
    "Session",
    "Signature",
    "Sliding",
    "Tumbling",
]

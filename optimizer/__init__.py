"""optimizer: a declarative model-optimization compiler.

``import optimizer`` stays light: torch, onnxruntime, tensorrt and mlflow are imported
inside the functions that use them.
"""

__version__ = "0.1.0"

"""Where models and data come from. ``sources/models.py`` holds the ``SOURCES`` table: each ``model.source``
kind (built-in models, Hugging Face directories, ONNX files, torch.export programs, Python factories) is one
module here plus one row there. Data: the bundled digits, data factories and text files (``data.py``)."""

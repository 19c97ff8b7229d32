"""Where models and data come from: the built-in models, Python factories, ONNX and torch.export files,
Hugging Face directories; the bundled digits data, data factories and text files."""

"""Model and data sources beyond the built-in digits: Hugging Face directories (``hf.py``), text
files tokenized for them (``text.py``), and a small built-in Vision Transformer (``vit.py``)."""

"""Tiny Hugging Face directories and text files for the tests, written from config classes and a
vocabulary the tests write themselves (nothing downloaded)."""

import csv
import json
import random
from pathlib import Path

WORDS = ("the a this that movie film story actor actress plot scene music ending start was is were are "
         "very really quite so too not good great fine nice lovely fun happy bad awful poor boring dull sad "
         "long short slow fast funny loud quiet and but or with without i you we they it love hate like "
         "liked enjoyed watched saw found").split()
POSITIVE = ("good", "great", "fine", "nice", "lovely", "fun", "happy")
NEGATIVE = ("bad", "awful", "poor", "boring", "dull", "sad")


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


def tiny_bert(directory: Path, head: bool = True, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32, 2 heads), with a 2-label classifier when ``head``, and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(directory.parent / f"{directory.name}.vocab.txt")
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(str(directory))
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    torch.manual_seed(seed)
    model = (BertForSequenceClassification if head else BertModel)(config)
    model.save_pretrained(str(directory))
    return directory


def sentences(n: int, seed: int = 0):
    """``n`` (sentence, label) pairs made of WORDS; the label says whether a positive word is in it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(WORDS[:12], rng.randint(2, 6)) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words), "positive" if positive else "negative"))
    return rows


def write_jsonl(path: Path, rows, labels: bool = True) -> Path:
    path.write_text("".join(json.dumps({"text": t, **({"label": y} if labels else {})}) + "\n" for t, y in rows))
    return path


def write_csv(path: Path, rows, labels: bool = True) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] if labels else ["text"])
        writer.writerows([(t, y) if labels else (t,) for t, y in rows])
    return path


def tiny_vit(directory: Path, seed: int = 0) -> Path:
    """A 2-layer ViT image classifier (1x32x32 inputs, 8x8 patches, hidden 32, 3 labels)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, num_channels=1, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=3)
    torch.manual_seed(seed)
    ViTForImageClassification(config).save_pretrained(str(directory))
    return directory

"""A MiniLM-size BERT sentence encoder directory and a file of varied label-free sentences, built offline.

The encoder: 6 layers, hidden 384, 12 heads, intermediate 1536, 30522-entry vocabulary, random weights (seeded),
with outlier channels in the attention values of layers 1 and 4 (function-preserving: see ``outliers``; trained
BERTs have such channels, random weights do not), saved as a Hugging Face directory with a ``BertTokenizer`` (tokenizers-backed) made from a vocabulary written here (the sentences'
words, then ``[unusedN]`` fillers). The sentences: templates over subjects, verbs, objects, places, times and
modifiers, drawn with a seed, so near neighbours differ by a word or two.

Usage: python experiments/embedding_model.py OUT_DIR [--sentences 600]
  writes OUT_DIR/encoder (the model directory) and OUT_DIR/sentences.jsonl
"""

import argparse
import json
import random
from pathlib import Path

SUBJECTS = ("the cat, the dog, a child, my friend, the teacher, a doctor, the farmer, our neighbour, the pilot, "
            "a student, the old man, a young woman, the team, the company, the government, a scientist, the artist, "
            "my brother, her sister, the driver, a nurse, the chef, the king, the queen, a soldier, the author").split(", ")
VERBS = ("likes loves hates watched found bought sold painted cooked wrote read opened closed built repaired "
         "visited cleaned carried lost forgot remembered ordered delivered studied described explained").split()
OBJECTS = ("a red car, the old house, a small boat, the new phone, a long letter, the blue door, a heavy box, "
           "the wooden table, a bright lamp, the broken window, a warm coat, the green garden, fresh bread, "
           "the quiet street, a strange book, the golden ring, a tall tree, the empty room, a cold drink, "
           "the black piano").split(", ")
PLACES = ("in the city, near the river, at the market, on the hill, by the sea, in the kitchen, at school, "
          "in the park, at the station, in the forest, on the farm, at the hospital, in the office, at home").split(", ")
TIMES = ("yesterday, today, last week, this morning, at night, in summer, in winter, every day, on monday, "
         "after lunch").split(", ")
ADVERBS = "quickly slowly carefully happily quietly suddenly badly easily finally gently".split()
EXTRA = ("because it was raining", "while the sun was shining", "and then went to sleep", "but nobody noticed",
         "although it was late", "before the guests arrived", "after the long trip", "with great care")


def sentences(n: int, seed: int = 0):
    rng = random.Random(seed)
    subjects, objects, places, times = SUBJECTS, OBJECTS, PLACES, TIMES
    seen, rows = set(), []
    while len(rows) < n:
        parts = [rng.choice(subjects)]
        if rng.random() < 0.4:
            parts.append(rng.choice(ADVERBS))
        parts += [rng.choice(VERBS), rng.choice(objects)]
        if rng.random() < 0.6:
            parts.append(rng.choice(places))
        if rng.random() < 0.5:
            parts.append(rng.choice(times))
        if rng.random() < 0.3:
            parts.append(rng.choice(EXTRA))
        text = " ".join(parts)
        if text not in seen:
            seen.add(text)
            rows.append(text)
    return rows


def vocabulary(texts, size: int = 30522):
    words = sorted({w for t in texts for w in t.split()} | {w for e in EXTRA for w in e.split()})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return specials + words + [f"[unused{i}]" for i in range(size - len(specials) - len(words))]


def outliers(model, layers, channels: int = 2, factor: float = 40.0) -> None:
    """Outlier channels, as trained BERTs have them, without changing the model's function: in each of ``layers``,
    ``channels`` value-projection outputs times ``factor`` and the attention output projection's matching inputs
    divided by it (the attention context is linear in the values). The attention output projection's input then
    spans a range ``factor`` times its typical channel's, which per-call uint8 quantization rounds coarsely."""
    import torch

    with torch.no_grad():
        for i in layers:
            layer = model.encoder.layer[i]
            value, dense = layer.attention.self.value, layer.attention.output.dense
            idx = torch.arange(channels) * 7 + 3
            value.weight[idx] *= factor
            value.bias[idx] *= factor
            dense.weight[:, idx] /= factor


def build(out: Path, n: int, seed: int = 0, outlier_layers=(1, 4)) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    texts = sentences(n, seed)
    (out / "sentences.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(vocabulary(texts)) + "\n")
    encoder = out / "encoder"
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(str(encoder))  # the fast (tokenizers) one
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    model = BertModel(config, add_pooling_layer=False).eval()
    outliers(model, outlier_layers)
    model.save_pretrained(str(encoder))
    return encoder


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--sentences", type=int, default=600)
    p.add_argument("--outliers", default="1,4", help="layers given outlier value channels ('' for none)")
    a = p.parse_args()
    print(build(a.out, a.sentences, outlier_layers=[int(i) for i in a.outliers.split(",") if i]))

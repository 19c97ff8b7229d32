"""A small Vision Transformer for the bundled digits data (1x32x32 images), in plain torch.

Patches of 8x8 pixels (2x2 pixels of the original 8x8 digit: 16 tokens) are embedded by a strided
convolution, given learned position embeddings and run through pre-norm encoder blocks (dim 128,
4 blocks, 4 heads, MLP 256, GELU); the mean of the tokens goes through a final LayerNorm to a
linear classifier (0.54 M parameters). Width 128, not 64: at 64 every matrix product is too small for
INT8 to pay (dynamic INT8 ran 1.27x torch eager at batch 32, its FP32 export 1.31x); at 128 it runs
2.8x (experiments/results/bench_vit.txt). Attention is written
with explicit MatMul/Softmax (no fused kernel), so both ONNX exporters emit plain MatMuls that
ONNX Runtime's quantizer turns into integer matrix products."""

from functools import lru_cache


@lru_cache(maxsize=None)
def _attention_class():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim: int, heads: int):
            super().__init__()
            self.heads, self.head_dim = heads, dim // heads
            self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.out = nn.Linear(dim, dim)

        def split(self, x):
            b, n, _ = x.shape
            return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

        def forward(self, x):
            b, n, c = x.shape
            q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / (self.head_dim ** 0.5)
            ctx = torch.matmul(scores.softmax(dim=-1), v)
            return self.out(ctx.transpose(1, 2).reshape(b, n, c))

    return Attention


@lru_cache(maxsize=None)
def _block_class():
    from torch import nn

    attention = _attention_class()

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int, hidden: int):
            super().__init__()
            self.norm1, self.attn = nn.LayerNorm(dim), attention(dim, heads)
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    return Block


@lru_cache(maxsize=None)
def _vit_class():
    import torch
    from torch import nn

    block = _block_class()

    class DigitsViT(nn.Module):
        def __init__(self, num_classes, in_channels, image_size, patch_size, dim, depth, heads, mlp_ratio):
            super().__init__()
            tokens = (image_size // patch_size) ** 2
            self.patch = nn.Conv2d(in_channels, dim, patch_size, patch_size)
            self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
            self.blocks = nn.Sequential(*[block(dim, heads, dim * mlp_ratio) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2) + self.position
            return self.head(self.norm(self.blocks(x).mean(dim=1)))

    return DigitsViT


def vit_digits(num_classes: int = 10, in_channels: int = 1, image_size: int = 32, patch_size: int = 8,
               dim: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: int = 2):
    """The Vision Transformer: ``[N, in_channels, image_size, image_size]`` float -> ``[N, num_classes]``."""
    if image_size % patch_size or dim % heads:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size} "
                         f"and dim {dim} a multiple of heads {heads}")
    model = _vit_class()(num_classes, in_channels, image_size, patch_size, dim, depth, heads, mlp_ratio)
    model.output_names = ["logits"]
    return model

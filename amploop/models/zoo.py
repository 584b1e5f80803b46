"""Built-in architectures by name: ``mlp``, ``tabular``, ``cnn``, ``resnet`` and ``gpt``.

Every model takes one dict of tensors and returns logits (or one value per row for
regression), so the training loop, the runtime and the server treat them alike:

- ``numeric``: float (n, k) standardised numeric features;
- ``categorical``: int64 (n, m) category indices, 0 meaning missing or unseen;
- ``image``: float (n, C, H, W) scaled to [0, 1];
- ``tokens``: int64 (n, T) token ids (``gpt``).

A user's own ``nn.Module`` trains through the Python API when it follows the same contract.

Examples
--------
>>> import torch
>>> spec = ModelSpec(n_numeric=3, cardinalities=(4, 3), n_outputs=2)
>>> model = build_model("tabular", spec)
>>> model({"numeric": torch.zeros(5, 3), "categorical": torch.zeros(5, 2, dtype=torch.long)}).shape
torch.Size([5, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amploop.errors import ConfigError

__all__ = ["ARCHITECTURES", "CUSTOM_ARCHITECTURE", "ModelSpec", "build_model", "count_parameters"]


@dataclass(frozen=True)
class ModelSpec:
    """The shapes a model must fit: inputs from the encoder, outputs from the task."""

    n_numeric: int = 0
    cardinalities: tuple[int, ...] = ()  # per categorical column, including the unknown bucket
    image_shape: tuple[int, ...] | None = None  # (C, H, W)
    n_outputs: int = 1  # classes, or 1 for regression
    vocab_size: int | None = None  # gpt
    block_size: int | None = None  # gpt: longest sequence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            n_numeric=int(data.get("n_numeric", 0)),
            cardinalities=tuple(data.get("cardinalities", ())),
            image_shape=tuple(data["image_shape"]) if data.get("image_shape") else None,
            n_outputs=int(data.get("n_outputs", 1)),
            vocab_size=data.get("vocab_size"),
            block_size=data.get("block_size"),
        )


def _mlp_body(width_in: int, hidden: list[int], dropout: float, n_outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(width_in, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    layers.append(nn.Linear(width_in, n_outputs))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Standardised numerics and one-hot categoricals into a ReLU multilayer perceptron."""

    def __init__(self, spec: ModelSpec, hidden: list[int] | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.cardinalities = list(spec.cardinalities)
        offsets = torch.tensor([0, *self.cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.n_onehot = sum(self.cardinalities)
        self.body = _mlp_body(spec.n_numeric + self.n_onehot, hidden or [256, 256], dropout, spec.n_outputs)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        parts = []
        if "numeric" in inputs and inputs["numeric"].shape[1]:
            parts.append(inputs["numeric"])
        if self.cardinalities:
            cats = inputs["categorical"] + self.offsets
            onehot = torch.zeros(cats.shape[0], self.n_onehot, device=cats.device, dtype=torch.float32)
            onehot.scatter_(1, cats, 1.0)
            parts.append(onehot)
        return self.body(torch.cat(parts, dim=1))


class TabularNet(nn.Module):
    """An embedding per categorical column (fastai's size rule), concatenated with numerics."""

    def __init__(
        self,
        spec: ModelSpec,
        hidden: list[int] | None = None,
        dropout: float = 0.0,
        max_embedding_dim: int = 32,
    ) -> None:
        super().__init__()
        dims = [min(max_embedding_dim, round(1.6 * c**0.56)) for c in spec.cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(spec.cardinalities, dims, strict=True))
        self.norm = nn.BatchNorm1d(spec.n_numeric) if spec.n_numeric else None
        self.body = _mlp_body(spec.n_numeric + sum(dims), hidden or [256, 128], dropout, spec.n_outputs)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        parts = [emb(inputs["categorical"][:, i]) for i, emb in enumerate(self.embeddings)]
        if self.norm is not None:
            parts.append(self.norm(inputs["numeric"]))
        return self.body(torch.cat(parts, dim=1))


class SmallCNN(nn.Module):
    """Two conv-ReLU-pool stages and a classifier: about 99% on MNIST."""

    def __init__(self, spec: ModelSpec, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        channels, height, width_px = _image_shape(spec)
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 2 * width * (height // 4) * (width_px // 4)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, spec.n_outputs)
        )

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.head(self.features(inputs["image"]))


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(c_in, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """ResNet (He et al. 2016): depth 18 or 34 (basic blocks) or 50 (bottlenecks), any base width.

    Small images (under 64 pixels) get a 3x3 stem without pooling, as is usual for MNIST/CIFAR.
    """

    LAYOUTS = {18: (_Basic, (2, 2, 2, 2)), 34: (_Basic, (3, 4, 6, 3)), 50: (_Bottleneck, (3, 4, 6, 3))}

    def __init__(self, spec: ModelSpec, depth: int = 18, width: int = 64) -> None:
        super().__init__()
        if depth not in self.LAYOUTS:
            raise ConfigError(f"resnet depth {depth} is not supported; valid: 18, 34, 50")
        block, counts = self.LAYOUTS[depth]
        channels, height, _ = _image_shape(spec)
        if height < 64:
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(channels, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        stages: list[nn.Module] = []
        c_in = width
        for i, count in enumerate(counts):
            stage_width = width * 2**i
            for j in range(count):
                stages.append(block(c_in, stage_width, 2 if (j == 0 and i > 0) else 1))
                c_in = stage_width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, spec.n_outputs)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        x = self.stages(self.stem(inputs["image"]))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A GPT-2 style decoder (pre-norm, learned positions, tied output embedding).

    GPT-2 124M is ``n_layer=12, n_head=12, n_embd=768`` with ``vocab_size=50304``.
    """

    def __init__(
        self, spec: ModelSpec, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not spec.vocab_size or not spec.block_size:
            raise ConfigError("gpt needs a vocabulary size and a block size (token data)")
        if n_embd % n_head:
            raise ConfigError(f"gpt: n_embd {n_embd} must be divisible by n_head {n_head}")
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.token = nn.Embedding(spec.vocab_size, n_embd)
        self.position = nn.Embedding(spec.block_size, n_embd)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, spec.vocab_size, bias=False)
        self.lm_head.weight = self.token.weight
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))  # GPT-2 residual scaling

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        tokens = inputs["tokens"]
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def _image_shape(spec: ModelSpec) -> tuple[int, int, int]:
    if not spec.image_shape or len(spec.image_shape) != 3:
        raise ConfigError("this architecture needs image data (C, H, W); use mlp or tabular for tables")
    c, h, w = spec.image_shape
    return int(c), int(h), int(w)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "tabular": TabularNet,
    "cnn": SmallCNN,
    "resnet": ResNet,
    "gpt": GPT,
}
CUSTOM_ARCHITECTURE = "custom"  # a user's own nn.Module; loading it needs an instance of its class
IMAGE_ARCHITECTURES = frozenset({"cnn", "resnet"})
TABLE_ARCHITECTURES = frozenset({"mlp", "tabular"})


def build_model(name: str, spec: ModelSpec, options: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a built-in architecture; unknown names or options are ConfigErrors."""
    if name == CUSTOM_ARCHITECTURE:
        wanted = (options or {}).get("class", "your own model class")
        raise ConfigError(f"this model is a custom {wanted}; pass module= with a new instance of that class to load it")
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown model '{name}'; valid: {', '.join(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[name](spec, **(options or {}))
    except TypeError as exc:
        raise ConfigError(f"model '{name}': {exc}; check model.options in amploop.yaml") from None


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())

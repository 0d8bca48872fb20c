"""Model hyperparameters: `TransformerConfig` and the named presets."""

import dataclasses
import json

NORM_POSITIONS = ("post", "pre")
POSITION_ENCODINGS = ("sinusoidal", "learned")
# "interleaved": the paper's sin at 2i, cos at 2i + 1; "sines_then_cosines": Marian's layout
POSITION_LAYOUTS = ("interleaved", "sines_then_cosines")
# the feed-forward's nonlinearity: the paper's relu; swish and gelu (Marian's "gelu" is
# x * sigmoid(1.702 x), "gelu_sigmoid" here; "gelu" is the exact, erf one)
ACTIVATIONS = ("relu", "swish", "gelu", "gelu_sigmoid")


@dataclasses.dataclass
class TransformerConfig:
    """Everything `build_transformer` needs; defaults are the paper's base model.

    `norm_position="post"` is the paper's Add & Norm (LayerNorm(x + Sublayer(x)));
    "pre" normalizes the sublayer input instead and adds a final LayerNorm, which
    trains more stably for deep stacks. `share_embeddings` uses one embedding table
    for source and target (needs equal vocabulary sizes); `tie_output_embeddings`
    reuses the target embedding matrix as the pre-softmax projection (the paper
    does both).

    The options after `attention_dropout` describe pretrained checkpoints' variants (Marian /
    OPUS-MT: `keras_transformer.pretrained`); their defaults are the paper's.
    """

    source_vocab_size: int = 37000
    target_vocab_size: int = 37000
    num_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    max_length: int = 256
    norm_position: str = "post"
    position_encoding: str = "sinusoidal"
    share_embeddings: bool = False
    tie_output_embeddings: bool = True
    layer_norm_epsilon: float = 1e-6
    # Dropout on the d_ff-wide ReLU output inside each feed-forward network: tensor2tensor's
    # relu_dropout, an option. The paper (and keras-hub) drop sublayer outputs only.
    ffn_dropout: float = 0.0
    # Dropout on the attention weights; None: `dropout`, as in the paper's tensor2tensor code.
    # 0 lets training attend by the fused kernel (`ops.dot_product_attention`: flash attention
    # on GPUs), which never materializes the weights to drop.
    attention_dropout: float = None
    activation: str = "relu"
    position_layout: str = "interleaved"
    # a learned bias added to the tied output projection's logits (Marian's
    # decoder_ff_logit_out_b); an untied projection always has one
    output_bias: bool = False
    # embeddings times sqrt(d_model) before the positions are added (the paper, section 3.4)
    scale_embeddings: bool = True
    # the source framing: [START] x [END] (ours), or x [END] (Marian's)
    source_start_token: bool = True

    def __post_init__(self):
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if self.d_model % 2:
            raise ValueError(f"d_model={self.d_model} must be even (sin/cos pairs)")
        if self.norm_position not in NORM_POSITIONS:
            raise ValueError(
                f"norm_position={self.norm_position!r}; expected one of {NORM_POSITIONS}")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding={self.position_encoding!r}; "
                f"expected one of {POSITION_ENCODINGS}")
        for name, allowed in (("activation", ACTIVATIONS),
                              ("position_layout", POSITION_LAYOUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError(
                "share_embeddings needs equal vocabulary sizes, got "
                f"{self.source_vocab_size} and {self.target_vocab_size}")
        for name in ("source_vocab_size", "target_vocab_size", "num_layers", "d_ff",
                     "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.ffn_dropout < 1.0:
            raise ValueError(f"ffn_dropout must be in [0, 1), got {self.ffn_dropout}")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(
                f"attention_dropout must be in [0, 1) or None, got {self.attention_dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    def replace(self, **changes) -> "TransformerConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TransformerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TransformerConfig":
        return cls.from_dict(json.loads(text))


PRESETS = {
    # Tests: seconds to build and train a step.
    "tiny": dict(num_layers=2, d_model=32, num_heads=4, d_ff=64, dropout=0.0,
                 max_length=64),
    # The default job: learns the embedded dataset on 2 CPU cores in minutes.
    "small": dict(num_layers=2, d_model=128, num_heads=4, d_ff=512, dropout=0.1,
                  max_length=64),
    # Real corpora on a CPU in minutes: the shape of the keras.io / keras-hub translation example.
    "medium": dict(num_layers=2, d_model=256, num_heads=8, d_ff=1024, dropout=0.1,
                   max_length=128),
    # The paper's base model (Table 3): N=6, d_model=512, h=8, d_ff=2048, P_drop=0.1.
    "base": dict(num_layers=6, d_model=512, num_heads=8, d_ff=2048, dropout=0.1,
                 max_length=256),
    # The paper's big model: d_model=1024, h=16, d_ff=4096, P_drop=0.3.
    "big": dict(num_layers=6, d_model=1024, num_heads=16, d_ff=4096, dropout=0.3,
                max_length=256),
}


def preset(name: str, **overrides) -> TransformerConfig:
    """A preset by name, with any field overridden (e.g. vocabulary sizes)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return TransformerConfig(**{**PRESETS[name], **overrides})

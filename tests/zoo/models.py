"""The model zoo: small real architectures, built in torch with random weights from configs.

Input: a zoo name. Output: `build(name) -> Zoo`, a torch module in the mode it is exported in,
example inputs (a tuple of tensors with their ONNX input names) and the names of its outputs.
Every architecture is a tiny configuration of what users download: Hugging Face BERT,
DistilBERT, GPT-2, Llama and ViT (transformers, from configs, no download), ResNet-18,
a MobileNetV2-style, a VGG-style and a small U-Net, LSTM and GRU classifiers, a 1-D conv audio
net and an embedding text classifier. Dropout is off everywhere (its mask is random), so
torch's train and eval modes agree except in batch norm, which is exported in eval mode.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

VOCAB, SEQ, BATCH = 64, 8, 2


@dataclass
class Zoo:
    name: str
    model: nn.Module
    inputs: dict[str, torch.Tensor]
    output: str


class _HF(nn.Module):
    """A transformers model whose forward takes its inputs as named tensors (in the order of
    `names`) and returns one tensor."""

    def __init__(self, model, key, names):
        super().__init__()
        self.model, self.key, self.names = model, key, names

    def forward(self, *args):
        return getattr(self.model(**dict(zip(self.names, args))), self.key)


def _tokens(seed=0):
    """Token ids from 1: id 0 is the padding index, whose embedding row torch never trains (a
    fact of torch's Embedding that an ONNX Gather does not carry)."""
    return torch.randint(1, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(seed))


def _hf_text(kind: str, attn: str = "eager") -> Zoo:
    import transformers as tf

    common = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32}
    if kind == "bert":
        config = tf.BertConfig(**common, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0, attn_implementation=attn)
        model, key = tf.BertModel(config), "last_hidden_state"
    elif kind == "distilbert":
        config = tf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                     hidden_dim=64, max_position_embeddings=32, dropout=0.0,
                                     attention_dropout=0.0, attn_implementation=attn)
        model, key = tf.DistilBertModel(config), "last_hidden_state"
    elif kind == "gpt2":
        config = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                               attn_implementation=attn)
        model, key = tf.GPT2LMHeadModel(config), "logits"
    elif kind == "llama":
        config = tf.LlamaConfig(**common, num_key_value_heads=2, attn_implementation=attn)
        model, key = tf.LlamaForCausalLM(config), "logits"
    else:
        raise KeyError(kind)
    torch.manual_seed(0)
    model.config.use_cache = False
    # the inputs a user's export has (optimum's, for one): the token ids and the attention mask
    mask = torch.ones(BATCH, SEQ, dtype=torch.int64)
    mask[1, -2:] = 0  # the second sequence is padded
    inputs = {"input_ids": _tokens(), "attention_mask": mask}
    return _HF(model.eval(), key, list(inputs)), inputs, "y"


def _vit(attn: str = "eager"):
    import transformers as tf

    config = tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                          num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          num_labels=5, attn_implementation=attn)
    torch.manual_seed(0)
    return _HF(tf.ViTForImageClassification(config).eval(), "logits", ["pixel_values"]), \
        {"pixel_values": torch.randn(BATCH, 3, 16, 16)}, "y"


# --- vision ------------------------------------------------------------------------------------
def _conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


class _Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, act=None))
        self.skip = _conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout \
            else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def resnet18(classes=10):
    """torchvision's ResNet-18 layout (7x7 stem, max pool, 4 stages of 2 basic blocks)."""
    stages, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages += [_Basic(cin, cout, stride), _Basic(cout, cout, 1)]
        cin = cout
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(512, classes))


class _Inverted(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(_conv_bn(cin, mid, 1, act=nn.ReLU6),
                                  _conv_bn(mid, mid, 3, stride, groups=mid, act=nn.ReLU6),
                                  _conv_bn(mid, cout, 1, act=None))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def mobilenet_v2(classes=10):
    blocks, cin = [], 16
    for cout, stride in ((16, 1), (24, 2), (24, 1), (32, 2)):
        blocks.append(_Inverted(cin, cout, stride, 4))
        cin = cout
    return nn.Sequential(_conv_bn(3, 16, 3, 2, act=nn.ReLU6), *blocks,
                         _conv_bn(32, 64, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, classes))


def vgg(classes=10):
    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1),
                nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*stage(3, 16), *stage(16, 32), nn.Flatten(), nn.Linear(32 * 8 * 8, 64),
                         nn.ReLU(), nn.Linear(64, classes))


class UNet(nn.Module):
    """Two levels down (max pool) and up: a transposed conv at one, bilinear upsampling at the
    other, skip connections concatenated."""

    def __init__(self, classes=3):
        super().__init__()
        self.d1, self.d2 = _conv_bn(3, 8), _conv_bn(8, 16)
        self.mid = _conv_bn(16, 32)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.u2 = _conv_bn(32, 16)
        self.up1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.u1 = _conv_bn(24, 8)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(nn.functional.max_pool2d(a, 2))
        m = self.mid(nn.functional.max_pool2d(b, 2))
        u = self.u2(torch.cat([self.up2(m), b], 1))
        return self.head(self.u1(torch.cat([self.up1(u), a], 1)))


def audio_net(classes=5):
    return nn.Sequential(nn.Conv1d(1, 8, 9, stride=2, padding=4), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.MaxPool1d(2), nn.Conv1d(8, 16, 5, padding=2), nn.BatchNorm1d(16),
                         nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, classes))


# --- sequences ---------------------------------------------------------------------------------
class RNNClassifier(nn.Module):
    def __init__(self, cell, classes=4, bidirectional=False):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = cell(16, 24, num_layers=2, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(24 * (2 if bidirectional else 1), classes)

    def forward(self, tokens):
        out = self.rnn(self.embed(tokens))[0]
        return self.head(out[:, -1])


class TextClassifier(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(1))


def _images(size=32, channels=3):
    return {"x": torch.randn(BATCH, channels, size, size,
                             generator=torch.Generator().manual_seed(0))}


def _seeded(make: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return make().eval()


BUILDERS: dict[str, Callable[[], tuple[nn.Module, dict[str, torch.Tensor], str]]] = {
    "bert": lambda: _hf_text("bert"),
    "distilbert": lambda: _hf_text("distilbert"),
    "gpt2": lambda: _hf_text("gpt2"),
    "llama": lambda: _hf_text("llama"),
    "bert-sdpa": lambda: _hf_text("bert", "sdpa"),
    "vit": _vit,
    "resnet18": lambda: (_seeded(resnet18), _images(), "y"),
    "mobilenet_v2": lambda: (_seeded(mobilenet_v2), _images(), "y"),
    "vgg": lambda: (_seeded(vgg), _images(), "y"),
    "unet": lambda: (_seeded(UNet), _images(16), "y"),
    "lstm": lambda: (_seeded(lambda: RNNClassifier(nn.LSTM)), {"tokens": _tokens()}, "y"),
    "gru": lambda: (_seeded(lambda: RNNClassifier(nn.GRU, bidirectional=True)),
                    {"tokens": _tokens()}, "y"),
    "audio": lambda: (_seeded(audio_net),
                      {"x": torch.randn(BATCH, 1, 64, generator=torch.Generator().manual_seed(0))},
                      "y"),
    "text": lambda: (_seeded(TextClassifier), {"tokens": _tokens()}, "y"),
}


def build(name: str) -> Zoo:
    model, inputs, output = BUILDERS[name]()
    return Zoo(name, model, inputs, output)

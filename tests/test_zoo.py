"""The zoo: real architectures exported by torch both ways, imported and trained by graphc.

Input: every model of tests/zoo/models.py (Hugging Face BERT, DistilBERT, GPT-2, Llama, ViT;
ResNet-18, MobileNetV2, VGG, U-Net; LSTM and GRU classifiers; a 1-D conv audio net; an embedding
text classifier), exported by torch's legacy exporter (opset 17) and its dynamo exporter.
Output: pass/fail that each imports; that graphc's compiled forward matches onnxruntime to
1e-4 relative; that its gradients match torch autograd to 1e-4 (norm-wise, per parameter); that
five SGD steps follow torch's losses within 1e-2; that graphc trains exactly torch's parameters
(no buffer, statistic or constant); and that the default (folded, optimised) exports also match
onnxruntime.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the zoo is exported by torch (a test extra)")
pytest.importorskip("transformers", reason="the Hugging Face models need transformers")

from tests.zoo.check import check, export, forward_only
from tests.zoo.models import BUILDERS, build

EXPORTERS = ("legacy", "dynamo")


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_imports_matches_and_trains_like_torch(name, exporter, tmp_path):
    zoo = build(name)
    report = check(zoo, export(zoo, tmp_path / f"{name}.onnx", exporter))
    assert report.forward_rel <= 1e-4, f"forward vs onnxruntime: {report.forward_rel:.2e}"
    assert report.grad_rel, "no gradient was compared"
    worst = max(report.grad_rel, key=report.grad_rel.get)
    assert report.grad_rel[worst] <= 1e-4, f"gradient of {worst}: {report.grad_rel[worst]:.2e}"
    for step, (ours, theirs) in enumerate(zip(report.losses, report.torch_losses)):
        assert abs(ours - theirs) <= 1e-2 * max(1.0, abs(theirs)), \
            f"step {step}: loss {ours} vs torch {theirs}"
    assert report.not_torch_params == [], "trained, but not torch parameters"
    assert report.untrained == [], "torch trains them, graphc does not"


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_default_export_matches_onnxruntime(name, exporter, tmp_path):
    """The export as users make it (constant folding, batch norm fused into convs, the
    onnxscript optimiser): the forward matches onnxruntime."""
    zoo = build(name)
    path = export(zoo, tmp_path / f"{name}.onnx", exporter, faithful=False)
    assert forward_only(zoo, path) <= 1e-4

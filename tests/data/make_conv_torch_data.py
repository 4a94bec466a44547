"""Makes tests/data/torch_conv_depthwise.npz: PyTorch's gradients of a padded depthwise conv
followed by a max pool, for tests/test_conv.py (which must not need torch).

Run once with torch installed: python tests/data/make_conv_torch_data.py
"""
import pathlib

import numpy as np
import torch

HERE = pathlib.Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 4, 6, 5)), "w": rng.standard_normal((4, 1, 3, 3))}
    feeds["b"] = rng.standard_normal(4)
    pads, strides, group = (0, 1, 2, 1), (2, 1), 4
    tx, tw, tb = (torch.tensor(feeds[k], requires_grad=True) for k in ("x", "w", "b"))
    padded = torch.nn.functional.pad(tx, (pads[1], pads[3], pads[0], pads[2]))
    y = torch.nn.functional.conv2d(padded, tw, tb, stride=strides, groups=group)
    pooled = torch.nn.functional.max_pool2d(y, 2, 1)
    r = np.random.default_rng(3).uniform(0.5, 1.5, pooled.shape)
    (pooled * torch.tensor(r)).sum().backward()
    np.savez(HERE / "torch_conv_depthwise.npz", **feeds, r=r, pads=pads, strides=strides,
             group=group, grad_x=tx.grad.numpy(), grad_w=tw.grad.numpy(),
             grad_b=tb.grad.numpy())


if __name__ == "__main__":
    main()

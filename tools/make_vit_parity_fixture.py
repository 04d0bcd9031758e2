#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/vit_parity.safetensors.

An independent PyTorch implementation of timm's VisionTransformer forward (class-token pooling, pre-norm blocks,
LayerNorm eps 1e-6, exact GELU, fused qkv) with prefix tuning, written from the equations rather than from the C#
code. The fixture holds a tiny ViT's weights under timm's names plus an input and the expected outputs, so the C#
forward can be checked to 1e-4.

Run with Debian's python3-torch:  /usr/bin/python3 tools/make_vit_parity_fixture.py
Only torch and the standard library are needed (safetensors is written by hand: 8-byte header length, JSON, data).
"""
import json
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

# Geometry of the fixture model; the C# test builds the same VitConfig.
IMAGE, PATCH, DIM, DEPTH, HEADS, CLASSES, BATCH, PREFIX = 32, 8, 32, 2, 2, 10, 3, 4
HEAD_DIM = DIM // HEADS
EPS = 1e-6


def make_weights(generator):
    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=generator) * std
    grid = IMAGE // PATCH
    w = {
        "cls_token": rnd(1, 1, DIM),
        "pos_embed": rnd(1, 1 + grid * grid, DIM),
        "patch_embed.proj.weight": rnd(DIM, 3, PATCH, PATCH, std=0.05),
        "patch_embed.proj.bias": rnd(DIM),
        "norm.weight": 1 + rnd(DIM), "norm.bias": rnd(DIM),
        "head.weight": rnd(CLASSES, DIM), "head.bias": rnd(CLASSES),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        w.update({
            b + "norm1.weight": 1 + rnd(DIM), b + "norm1.bias": rnd(DIM),
            b + "attn.qkv.weight": rnd(3 * DIM, DIM), b + "attn.qkv.bias": rnd(3 * DIM),
            b + "attn.proj.weight": rnd(DIM, DIM), b + "attn.proj.bias": rnd(DIM),
            b + "norm2.weight": 1 + rnd(DIM), b + "norm2.bias": rnd(DIM),
            b + "mlp.fc1.weight": rnd(4 * DIM, DIM), b + "mlp.fc1.bias": rnd(4 * DIM),
            b + "mlp.fc2.weight": rnd(DIM, 4 * DIM), b + "mlp.fc2.bias": rnd(DIM),
        })
    return w


def attention(x, w, b, prefix_k=None, prefix_v=None):
    """Multi-head self-attention; per sample s and head h the prefix keys/values prefix_k[s, h] join the keys."""
    batch, tokens, _ = x.shape
    qkv = x @ w[b + "attn.qkv.weight"].T + w[b + "attn.qkv.bias"]
    out = torch.empty(batch, tokens, DIM)
    for s in range(batch):                      # explicit loops: no reshape can mix samples or heads here
        for h in range(HEADS):
            q = qkv[s, :, 0 * DIM + h * HEAD_DIM: 0 * DIM + (h + 1) * HEAD_DIM]
            k = qkv[s, :, 1 * DIM + h * HEAD_DIM: 1 * DIM + (h + 1) * HEAD_DIM]
            v = qkv[s, :, 2 * DIM + h * HEAD_DIM: 2 * DIM + (h + 1) * HEAD_DIM]
            if prefix_k is not None:
                k = torch.cat([prefix_k[s, h], k], 0)
                v = torch.cat([prefix_v[s, h], v], 0)
            weights = torch.softmax(q @ k.T / HEAD_DIM ** 0.5, dim=-1)
            out[s, :, h * HEAD_DIM:(h + 1) * HEAD_DIM] = weights @ v
    return out @ w[b + "attn.proj.weight"].T + w[b + "attn.proj.bias"]


def forward(images, w, prefixes=None):
    x = F.conv2d(images, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], 1) + w["pos_embed"]
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (DIM,), w[b + "norm1.weight"], w[b + "norm1.bias"], EPS)
        pk, pv = prefixes[i] if prefixes is not None else (None, None)
        x = x + attention(h, w, b, pk, pv)
        h = F.layer_norm(x, (DIM,), w[b + "norm2.weight"], w[b + "norm2.bias"], EPS)
        h = F.gelu(h @ w[b + "mlp.fc1.weight"].T + w[b + "mlp.fc1.bias"])
        x = x + h @ w[b + "mlp.fc2.weight"].T + w[b + "mlp.fc2.bias"]
    x = F.layer_norm(x, (DIM,), w["norm.weight"], w["norm.bias"], EPS)
    cls = x[:, 0]
    return cls, cls @ w["head.weight"].T + w["head.bias"]


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"generator": "tools/make_vit_parity_fixture.py", "torch": torch.__version__}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for c in chunks:
            f.write(c)


def main():
    generator = torch.Generator().manual_seed(20261123)
    w = make_weights(generator)
    images = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator)
    # Different prefixes for every sample: a reshape-instead-of-permute bug would mix them up.
    prefixes = [(torch.randn(BATCH, HEADS, PREFIX, HEAD_DIM, generator=generator),
                 torch.randn(BATCH, HEADS, PREFIX, HEAD_DIM, generator=generator)) for _ in range(DEPTH)]
    with torch.no_grad():
        cls, logits = forward(images, w)
        cls_p, logits_p = forward(images, w, prefixes)
    tensors = dict(w)
    tensors.update({"input.images": images, "expected.cls": cls, "expected.logits": logits,
                    "expected.prefixed.cls": cls_p, "expected.prefixed.logits": logits_p})
    for i, (pk, pv) in enumerate(prefixes):
        tensors[f"input.prefix.{i}.keys"] = pk
        tensors[f"input.prefix.{i}.values"] = pv
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/ContinualMoE.Tests/Fixtures/vit_parity.safetensors"
    write_safetensors(out, tensors)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

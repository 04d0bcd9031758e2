#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/pil_resize.json: small random 8-bit RGB images resized with the exact
torchvision calls the official pipelines make on PIL images, run by Debian's python3-pil (9.4.0, the version the
official MoE_PromptCL requirements pin) and python3-torchvision.

    /usr/bin/python3 tools/make_pil_resize_fixture.py [out.json]

The calls (torchvision/transforms/transforms.py and functional.py; on PIL images they end in PIL's Image.resize /
Image.crop):
  resize_short  T.Resize(s)            shorter side to s (HiDe-Prompt / SMoPE test: Resize(256), here small s)
  resize_exact  T.Resize((h, w))       (SMoPE CIFAR test: Resize(224) of a square image)
  resized_crop  F.resized_crop(img, top, left, h, w, [s, s])   what RandomResizedCrop does after drawing the box
  center_crop   T.Resize(s) then T.CenterCrop(c)               the resize-crop test transform
each with interpolation BILINEAR and BICUBIC, shrinking and enlarging. Images and outputs are base64 of HWC bytes.
"""
import base64
import json
import sys

import numpy as np
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as F

out = sys.argv[1] if len(sys.argv) > 1 else "tests/ContinualMoE.Tests/Fixtures/pil_resize.json"
rng = np.random.default_rng(7)
modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}


def encode(image):
    array = np.asarray(image, dtype=np.uint8)
    return {"height": array.shape[0], "width": array.shape[1], "data": base64.b64encode(array.tobytes()).decode()}


cases = []
for height, width in [(13, 17), (20, 20), (29, 11), (7, 30)]:
    # Smooth structure plus noise, so that both the filter shape and the rounding matter.
    y, x = np.mgrid[0:height, 0:width]
    base = 127 + 90 * np.sin(x[..., None] / 3.0 + np.arange(3)) * np.cos(y[..., None] / 4.0)
    pixels = np.clip(base + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    for name, mode in modes.items():
        short = min(height, width)
        calls = [
            ("resize_short", [max(2, short // 3)], T.Resize(max(2, short // 3), interpolation=mode)),
            ("resize_short", [short + 5], T.Resize(short + 5, interpolation=mode)),
            ("resize_exact", [9, 12], T.Resize((9, 12), interpolation=mode)),
            ("resize_exact", [19, 23], T.Resize((19, 23), interpolation=mode)),
        ]
        for kind, args, transform in calls:
            cases.append({"input": len(cases), "kind": kind, "args": args, "interpolation": name,
                          "image": encode(image), "expected": encode(transform(image))})
        top, left = height // 5, width // 4
        crop_h, crop_w = max(3, height // 2), max(3, (2 * width) // 3)
        for size in [5, 14]:
            result = F.resized_crop(image, top, left, crop_h, crop_w, [size, size], interpolation=mode)
            cases.append({"input": len(cases), "kind": "resized_crop", "args": [top, left, crop_h, crop_w, size],
                          "interpolation": name, "image": encode(image), "expected": encode(result)})
        resize, crop = short + 3, short
        result = T.CenterCrop(crop)(T.Resize(resize, interpolation=mode)(image))
        cases.append({"input": len(cases), "kind": "center_crop", "args": [resize, crop], "interpolation": name,
                      "image": encode(image), "expected": encode(result)})

# Store each input image once.
images, for_case = [], []
for case in cases:
    data = case.pop("image")
    if data not in images:
        images.append(data)
    case["input"] = images.index(data)
with open(out, "w") as f:
    json.dump({"source": "python3-pil " + Image.__version__ + ", torchvision transforms", "images": images, "cases": cases}, f)
print("wrote", out, len(cases), "cases")

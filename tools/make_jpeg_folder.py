#!/usr/bin/python3
"""Writes an image folder of JPEGs with ImageNet-R-like sizes (for `continual-moe bench loader`).

ImageNet-R's images are web renditions of varied sizes, mostly a few hundred pixels per side; this draws each image's
width and height uniformly from 250..700 px, fills it with a smooth random colour field plus noise (so JPEG has real
work to do, unlike a flat image) and saves it at quality 90.

usage: /usr/bin/python3 tools/make_jpeg_folder.py OUT [--classes 10] [--per-class 40] [--seed 0]
"""
import argparse
import os

import numpy as np
from PIL import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for c in range(args.classes):
        folder = os.path.join(args.out, f"class{c:03d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(args.per_class):
            w, h = (int(v) for v in rng.integers(250, 701, size=2))
            coarse = rng.random((8, 8, 3)) * 255
            field = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=np.float32)
            field += rng.normal(0, 12, size=field.shape)
            Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:04d}.jpg"), quality=90)


if __name__ == "__main__":
    main()

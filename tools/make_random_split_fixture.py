#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/random_split.json: the official HiDe-Prompt / NoRGa ImageNet-R split,
produced by the official Imagenet_R class itself on a small made-up folder, and torch's randperm for the sizes used.

    git -C /work/.mirror/Minhchuyentoancbn+MoE_PromptCL/repo archive HEAD | tar -x -C /tmp/moe
    /usr/bin/python3 tools/make_random_split_fixture.py /tmp/moe [out.json]

Needs torch and torchvision (Debian: python3-torch, python3-torchvision). The script imports
continual_datasets/continual_datasets.py from the folder given on the command line (Minhchuyentoancbn/MoE_PromptCL at
e418337) and builds `Imagenet_R(root, train=True, download=True)` after `torch.manual_seed(42)`, as main.py seeds torch
before the trainers build the datasets. That class checks os.path.isfile on the image folder and so always calls
download_url; only that download is stubbed (a no-op), so nothing is fetched. The class then lists the folder with
torchvision's ImageFolder, splits it with torch.utils.data.random_split, moves the files into train/ and test/ and
reads train/ back; the fixture records both lists as the official code ends up with them.
"""
import json
import os
import sys
import tempfile
import types

import torch

moe_root = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "tests/ContinualMoE.Tests/Fixtures/random_split.json"
sys.path.insert(0, moe_root)
if "six" not in sys.modules:
    try:
        import six  # noqa: F401  (dataset_utils imports six.moves.urllib, unused here)
    except ImportError:
        six = types.ModuleType("six")
        six.moves = types.ModuleType("six.moves")
        six.moves.urllib = None
        sys.modules["six"] = six
        sys.modules["six.moves"] = six.moves
import continual_datasets.continual_datasets as official  # noqa: E402

official.download_url = lambda *args, **kwargs: None   # the only stub: no download

# A folder whose listing exercises the ordering rules: class names that sort differently by code point than by
# culture or case, numbered file names (img10 before img2), upper-case extensions, and files ImageFolder skips.
classes = {
    "n02": ["img2.jpg", "img10.jpg", "img1.JPG", "a.png", "b.jpeg", "notes.txt"] + [f"k{i}.jpg" for i in range(12)],
    "Zebra": ["z1.jpg", "Z2.jpg", "z3.webp", "z4.bmp", "z5.jpg"] + [f"z{i}.jpg" for i in range(10, 24)],
    "ant": ["0.jpg", "1.jpg", "10.jpg", "11.jpg", "2.jpg", "3.PNG", "x.gif"] + [f"{i}.jpg" for i in range(20, 34)],
    "a-class": ["p.jpg", "q.jpg", "r.jpg", "s.tiff"] + [f"p{i}.jpg" for i in range(15)],
    "a_class": ["m.jpg", "n.jpg", "o.jpg", "M.jpg", "N.JPEG", "O.ppm", "p.pgm"] + [f"m{i}.jpg" for i in range(12)],
    "b": [f"x{i}.jpg" for i in range(1, 20)],
}
files = [f"{c}/{f}" for c, names in classes.items() for f in names]
with tempfile.TemporaryDirectory() as root:
    for rel in files:
        path = os.path.join(root, "imagenet-r", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
    torch.manual_seed(42)
    train = official.Imagenet_R(root, train=True, download=True)
    test = official.Imagenet_R(root, train=False, download=True)

    def listed(dataset, part):
        prefix = os.path.join(root, "imagenet-r", part) + os.sep
        return [[p[len(prefix):].replace(os.sep, "/"), label] for p, label in dataset.data.samples]

    train_list, test_list = listed(train, "train"), listed(test, "test")
    class_names = train.data.classes

perms = []
for seed, n in [(42, 30000), (42, 24000), (40, 30000), (0, 37)]:
    torch.manual_seed(seed)
    p = torch.randperm(n).tolist()
    perms.append({"seed": seed, "n": n, "first": p[:32], "checksum": sum(i * v for i, v in enumerate(p)) % 1000000007})

fixture = {
    "source": "MoE_PromptCL e418337 continual_datasets.Imagenet_R, torch " + torch.__version__,
    "files": files,
    "seed": 42,
    "classes": class_names,
    "train": train_list,
    "test": test_list,
    "randperm": perms,
}
with open(out, "w") as f:
    json.dump(fixture, f, indent=0)
print("wrote", out, len(train_list), "train", len(test_list), "test")

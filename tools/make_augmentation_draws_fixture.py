#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/augmentation_draws.json: which augmented images a torch 1.13
DataLoader with torchvision 0.14 transforms produces, sample by sample, for a seeded main-process generator.

    /usr/bin/python3 tools/make_augmentation_draws_fixture.py [out.json]

Run with Debian's python3-torch 1.13 / python3-torchvision 0.14 / python3-pil 9.4. It builds the training transforms
of the official pipelines on a few small random 8-bit PIL images (output 6 x 6 so the fixture stays small):
  cifar    as MoE_PromptCL datasets.py build_cifar_transform: RandomResizedCrop(bicubic, scale 0.08..1),
           RandomHorizontalFlip, ColorJitter(brightness=63/255), ToTensor (Normalize left out: deterministic)
  folder   as MoE_PromptCL datasets.py build_transform: RandomResizedCrop(bilinear, scale 0.05..1),
           RandomHorizontalFlip(0.5), ToTensor (SMoPE's get_transform is the same with scale 0.08)
and iterates a real torch.utils.data.DataLoader over them (RandomSampler, batch 3, no drop_last) with num_workers 0 and
2 (the official scripts use 4; workers are real processes here), two epochs, torch.manual_seed(epoch seed) just before
each epoch's iterator is created.

Each sample records the dataset index, the crop box, the flip and the brightness factor the real transform drew, and
the real transform's output bytes. The draws are read by saving the worker's generator state, calling the transforms'
own get_params / torch.rand in the order their forward calls them, restoring the state and then running the real
Compose: the recorded parameters are what the real run used, and the output bytes prove it.
"""
import base64
import json
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else "tests/ContinualMoE.Tests/Fixtures/augmentation_draws.json"
SIZE = 6
BRIGHTNESS = 63 / 255

rng = np.random.default_rng(11)
# Includes very wide and very tall images, whose ten tries usually all fail (the central-crop fallback).
shapes = [(14, 18), (20, 11), (16, 16), (3, 30), (30, 3), (9, 13), (12, 12)]
arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]

pipelines = {
    "cifar": T.Compose([T.RandomResizedCrop(SIZE, interpolation=T.InterpolationMode.BICUBIC), T.RandomHorizontalFlip(),
                        T.ColorJitter(brightness=BRIGHTNESS), T.ToTensor()]),
    "folder": T.Compose([T.RandomResizedCrop(SIZE, scale=(0.05, 1.0), ratio=(3. / 4., 4. / 3.)),
                         T.RandomHorizontalFlip(p=0.5), T.ToTensor()]),
}


class Recorded(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return len(arrays)

    def __getitem__(self, index):
        image = Image.fromarray(arrays[index], "RGB")
        crop, flip = self.transform.transforms[0], self.transform.transforms[1]
        state = torch.get_rng_state()
        box = crop.get_params(image, crop.scale, crop.ratio)
        flipped = bool(torch.rand(1) < flip.p)
        factor = None
        if isinstance(self.transform.transforms[2], T.ColorJitter):
            jitter = self.transform.transforms[2]
            factor = jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)[1]
        torch.set_rng_state(state)
        output = self.transform(image)
        pixels = (output * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        return {"index": index, "box": torch.tensor(box), "flip": flipped,
                "factor": -1.0 if factor is None else factor,
                "pixels": torch.from_numpy(pixels)}


cases = []
for name, transform in pipelines.items():
    for workers in [0, 2]:
        loader = torch.utils.data.DataLoader(Recorded(transform), batch_size=3, sampler=torch.utils.data.RandomSampler(
            Recorded(transform)), num_workers=workers)
        epochs = []
        for epoch_seed in [5, 1993]:
            torch.manual_seed(epoch_seed)
            samples = []
            for batch in loader:
                for k in range(len(batch["index"])):
                    samples.append({"index": int(batch["index"][k]), "box": batch["box"][k].tolist(),
                                    "flip": bool(batch["flip"][k]), "factor": float(batch["factor"][k]),
                                    "pixels": base64.b64encode(batch["pixels"][k].numpy().tobytes()).decode()})
            epochs.append({"seed": epoch_seed, "samples": samples})
        cases.append({"pipeline": name, "workers": workers, "batch_size": 3, "epochs": epochs})

images = [{"height": a.shape[0], "width": a.shape[1], "data": base64.b64encode(a.tobytes()).decode()} for a in arrays]
with open(out, "w") as f:
    json.dump({"source": f"torch {torch.__version__}, torchvision {torchvision.__version__}, PIL {Image.__version__}",
               "size": SIZE, "brightness": BRIGHTNESS, "images": images, "cases": cases}, f)
print("wrote", out, sum(len(e["samples"]) for c in cases for e in c["epochs"]), "samples")

#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/hide_schedules.json: the learning rate of every epoch of the official
HiDe-Prompt / NoRGa schedules, produced by the schedulers the official code runs.

    git -C <timm mirror> archive v0.6.7 timm/scheduler | tar -x -C /tmp/timm067
    /usr/bin/python3 tools/make_hide_schedule_fixture.py /tmp/timm067 [out.json]

The official code (Minhchuyentoancbn/MoE_PromptCL at e418337; requirements.txt pins timm 0.6.7) uses two schedulers:
  * WTP (and TII) training: timm.scheduler.create_scheduler(args, optimizer) with the config's --sched, --min-lr 1e-5,
    --warmup-epochs 0, --decay-epochs 30, --decay-rate 0.1, no --lr-noise; engines/hide_promtp_wtp_and_tap_engine.py
    train_and_evaluate calls lr_scheduler.step(epoch) AFTER training epoch `epoch`. Scripts: CIFAR-100 --sched step,
    50 epochs; ImageNet-R --sched cosine, 150 epochs. The optimiser has two groups (--larger_prompt_lr: prompts at lr,
    the rest at 0.1 lr), lr = 0.03 x 128 / 256.
  * both classifier alignments (train_task_adaptive_prediction): torch.optim.lr_scheduler.CosineAnnealingLR(T_max =
    crct_epochs) on SGD at ca_lr, scheduler.step() after every epoch (30 epochs; NoRGa CIFAR-100 TAP runs 80).
This script imports timm's scheduler package from the folder given on the command line (the timm package's own
__init__, which imports the models, is replaced by an empty module so that only timm/scheduler runs) and drives it
exactly as the official loop does, recording each group's rate during each epoch. Needs torch only.
"""
import json
import sys
import types
from argparse import Namespace

import torch

timm_root = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "tests/ContinualMoE.Tests/Fixtures/hide_schedules.json"
fake_timm = types.ModuleType("timm")
fake_timm.__path__ = [timm_root + "/timm"]
sys.modules["timm"] = fake_timm
from timm.scheduler import create_scheduler  # noqa: E402


def wtp_rates(sched, epochs, lr):
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.Adam([{"params": [params[0]], "lr": lr}, {"params": [params[1]], "lr": lr * 0.1}], lr=lr)
    # The official config defaults (configs/cifar100_hideprompt_5e.py, imr_hideprompt_5e.py).
    args = Namespace(sched=sched, epochs=epochs, min_lr=1e-5, warmup_lr=1e-6, warmup_epochs=0, decay_epochs=30.0,
                     decay_rate=0.1, cooldown_epochs=10, patience_epochs=10, lr_noise=None, lr_noise_pct=0.67,
                     lr_noise_std=1.0, seed=42)
    scheduler, _ = create_scheduler(args, optimizer)
    rates = []
    for epoch in range(epochs):
        rates.append([g["lr"] for g in optimizer.param_groups])   # the rate this epoch trains at
        scheduler.step(epoch)
    return rates


def alignment_rates(epochs, lr):
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr, "weight_decay": 0.0}],
                                lr=lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer=optimizer, T_max=epochs)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


lr = 0.03 * 128 / 256
fixture = {
    "source": "timm 0.6.7 create_scheduler / torch CosineAnnealingLR driven as MoE_PromptCL e418337 does",
    "wtp": [
        {"sched": "step", "epochs": 50, "lr": lr, "head_multiplier": 0.1, "rates": wtp_rates("step", 50, lr)},
        {"sched": "cosine", "epochs": 150, "lr": lr, "head_multiplier": 0.1, "rates": wtp_rates("cosine", 150, lr)},
        {"sched": "cosine", "epochs": 5, "lr": lr, "head_multiplier": 0.1, "rates": wtp_rates("cosine", 5, lr)},
    ],
    "alignment": [
        {"epochs": 30, "lr": 0.005 * 128 / 256, "rates": alignment_rates(30, 0.005 * 128 / 256)},
        {"epochs": 80, "lr": 0.05, "rates": alignment_rates(80, 0.05)},
    ],
}
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", out)

"""Writes tests/ContinualMoE.Tests/Fixtures/smope_parity.json by running the official SMoPE modules themselves.

Usage: /usr/bin/python3 tools/make_smope_parity_fixture.py OFFICIAL_REPO_DIR [OUT_JSON]
  OFFICIAL_REPO_DIR: an export of github.com/Minhchuyentoancbn/SMoPE at 27b982c, e.g.
    git -C /work/.mirror/Minhchuyentoancbn+SMoPE/repo archive HEAD | tar -x -C /tmp/smope_off

Nothing of the official code is copied here: its classes are imported from OFFICIAL_REPO_DIR and run on small random
inputs with fixed weights and seeds. Imports the official files need but that do not matter for the parts run here
(timm, torchvision, tqdm, sklearn, the repository's data loaders and learners) are replaced by empty stand-ins in
sys.modules; sklearn's KMeans is replaced by a one-cluster stand-in, which is exact for the official default
n_centroids = 1 (every feature belongs to the single cluster). Tensor.cuda is made a no-op (CPU only).

Parts recorded (the C# tests in tests/ContinualMoE.Tests/Methods/SmopeParityTests.cs compare against each):
  prompt:    models/zoo.py OnePrompt + models/vit.py Attention for the six prompted blocks: raw and noisy scores, the
             top-K, the attention outputs (training with adaptive noise, dense, and test time), the frequent-expert
             set (process_task_count), and the router and prototype losses (OnePrompt.router_loss).
  schedules: utils/schedulers.py CosineSchedulerIter (`coswm`, with freeze iterations and a loader longer than the
             nominal epoch) and CosineSchedule (CUB-200), the rate each optimiser step runs at.
  alignment: trainer.py Trainer._compute_mean (multi-centroid, one centroid) and train_task_adaptive_prediction: the
             statistics, every batch it trains on, the rate of every step and the final head.
"""
import json
import sys
import types

import numpy as np
import torch

official = sys.argv[1]
out_path = sys.argv[2] if len(sys.argv) > 2 else "tests/ContinualMoE.Tests/Fixtures/smope_parity.json"
sys.path.insert(0, official)


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__path__ = []
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


class _Unused:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("stand-in for a dependency the fixture does not use")


class _OneClusterKMeans:
    """sklearn.cluster.KMeans for n_clusters = 1: every row in cluster 0."""

    def __init__(self, n_clusters, **kwargs):
        assert n_clusters == 1

    def fit(self, x):
        self.labels_ = np.zeros(len(x), dtype=np.int64)
        return self


def _no_accuracy(logits, target, topk=(1,)):
    return [torch.zeros(()) for _ in topk]


stub("timm")
stub("timm.models")
stub("timm.models.vision_transformer", _cfg=lambda **k: k, PatchEmbed=_Unused)
stub("timm.models.registry", register_model=lambda f: f)
stub("timm.models.layers", trunc_normal_=lambda *a, **k: None, DropPath=_Unused)
stub("timm.models.helpers", named_apply=None, adapt_input_conv=None)
stub("timm.utils", accuracy=_no_accuracy)
stub("torchvision", models=stub("torchvision.models"), transforms=stub("torchvision.transforms"))
stub("tqdm", tqdm=lambda x, **k: x, trange=lambda n, **k: range(n))
stub("sklearn")
stub("sklearn.cluster", KMeans=_OneClusterKMeans)
stub("dataloaders", utils=stub("dataloaders.utils"))
stub("learners")
torch.Tensor.cuda = lambda self, *a, **k: self

from models.vit import Attention  # noqa: E402
from models.zoo import OnePrompt  # noqa: E402
from utils.schedulers import CosineSchedule, CosineSchedulerIter  # noqa: E402
import trainer as official_trainer  # noqa: E402

fixture = {}


def put(name, value):
    if isinstance(value, torch.Tensor):
        value = value.detach()
        data = [float(f"{x:.8g}") for x in value.double().flatten().tolist()]  # float32 precision, smaller file
        fixture[name] = {"shape": list(value.shape), "data": data}
    else:
        fixture[name] = value


# ---------------------------------------------------------------- prompt forward and losses
B, N, H, HEAD_DIM, EXPERTS, K, EPS, MU_ROUTER, MU_PROTO = 3, 5, 2, 4, 6, 2, 0.4, 0.3, 0.2
D = H * HEAD_DIM
LAYERS = 6
torch.manual_seed(7)
prompt = OnePrompt(D, 3, [2 * EXPERTS, K, MU_ROUTER, MU_PROTO, EPS], key_dim=D, num_heads=H)
attentions = [Attention(D, num_heads=H, qkv_bias=True) for _ in range(LAYERS)]
inputs = [torch.randn(B, N, D) for _ in range(LAYERS)]
frequencies = torch.randint(0, 9, (LAYERS, H, EXPERTS))
frequencies[frequencies < 3] = 0  # some never-used experts
for e in range(LAYERS):
    for l in range(EXPERTS):
        for h in range(H):
            setattr(prompt, f"e_freq_{e}_{l}_{h}", int(frequencies[e, h, l]))
prompt.process_task_count()  # the frequent set from these counts; the current keys become the old keys
with torch.no_grad():
    for e in range(LAYERS):
        for l in range(EXPERTS):
            for h in range(H):
                getattr(prompt, f"e_pk_{e}_{l}_{h}").add_(0.5 * torch.randn(1, HEAD_DIM))


def stacked(prefix, source=prompt):
    return torch.stack([torch.stack([torch.cat([getattr(source, f"{prefix}_{e}_{l}_{h}") for l in range(EXPERTS)], 0)
                                     for h in range(H)]) for e in range(LAYERS)])  # [P, H, N_p, d]


put("prompt.keys", stacked("e_pk"))
put("prompt.values", stacked("e_pv"))
put("prompt.old_keys", stacked("old_e_pk"))
put("prompt.frequencies", frequencies.float())
put("prompt.frequent", torch.tensor(prompt.used_frequently, dtype=torch.float32))
for e in range(LAYERS):
    put(f"prompt.input.{e}", inputs[e])
    for name, tensor in attentions[e].state_dict().items():
        put(f"prompt.attention.{e}.{name}", tensor)
put("prompt.config", {"batch": B, "tokens": N, "heads": H, "head_dim": HEAD_DIM, "experts": EXPERTS, "top_k": K,
                      "epsilon": EPS, "router_weight": MU_ROUTER, "prototype_weight": MU_PROTO})

scores = []
for mode, train, topk in [("noisy", True, K), ("dense", True, -1), ("test", False, K)]:
    mode_scores = []
    for e in range(LAYERS):
        p_list, _, _ = prompt.forward(None, e, inputs[e], train=train, task_id=1)
        out, score = attentions[e](inputs[e], prompt=p_list, topk=topk, train=train, reduce_query=True)
        put(f"prompt.{mode}.output.{e}", out)
        if topk > 0:
            put(f"prompt.{mode}.selected.{e}", torch.topk(score[1], topk, dim=-1).indices.squeeze(2).float())
        mode_scores.append(score)
    if mode == "noisy":
        scores = mode_scores
        for e in range(LAYERS):
            put(f"prompt.scores.{e}", scores[e][0].squeeze(2))
            put(f"prompt.noisy_scores.{e}", scores[e][1].squeeze(2))

old_proto = prompt.mu_router_old
prompt.mu_router_old = 0.0
put("prompt.router_loss", float(prompt.router_loss(scores, task_id=1, topk=K)))
prompt.mu_router_old, prompt.mu_router = old_proto, 0.0
put("prompt.prototype_loss", float(prompt.router_loss(scores, task_id=1, topk=K)))

# ---------------------------------------------------------------- schedules
def rates(make_scheduler, groups, steps, per_epoch=None):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in groups]
    optimizer = torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(params, groups)])
    scheduler = make_scheduler(optimizer)
    seen = []
    for i in range(steps):
        if per_epoch is not None and i > 0 and i % per_epoch == 0:
            scheduler.step()  # the per-epoch branch of learn_prompt steps before every epoch after the first
        seen.append([g["lr"] for g in optimizer.param_groups])
        if per_epoch is None:
            scheduler.step()
    return seen


LR, ITER_STEP, EPOCHS, FREEZE, REAL_ITERS = 0.005, 7, 4, 5, 8
put("schedule.coswm.config", {"lr": LR, "prompt_multiplier": 5, "iter_step": ITER_STEP, "epochs": EPOCHS,
                              "freeze": FREEZE, "real_iterations_per_epoch": REAL_ITERS})
put("schedule.coswm.rates", rates(lambda o: CosineSchedulerIter(
    base_value=[LR * 5, LR], final_value=[1e-6, 1e-6], optimizer=o, iter_step=ITER_STEP, n_epochs=EPOCHS,
    last_epoch=-1, warmup_epochs=0, start_warmup_value=0, freeze_iters=FREEZE), [LR * 5, LR], EPOCHS * REAL_ITERS))
put("schedule.coda.config", {"lr": LR, "epochs": 5, "iterations_per_epoch": 3})
put("schedule.coda.rates", rates(lambda o: CosineSchedule(o, K=5), [LR * 5, LR], 15, per_epoch=3))

# ---------------------------------------------------------------- classifier alignment
CLASSES, PER_TASK, FEATURE_DIM, PER_CLASS_TRAIN, BATCH, RATIO, CA_EPOCHS, CA_LR = 6, 3, 5, 9, 4, 1.0, 3, 0.01
torch.manual_seed(11)
class_means = torch.randn(CLASSES, FEATURE_DIM) * 2
features = {c: class_means[c] + torch.randn(PER_CLASS_TRAIN, FEATURE_DIM) * (0.5 + 0.1 * c) for c in range(CLASSES)}


class ClassData(torch.utils.data.Dataset):
    def __init__(self):
        self.current = None
        self.class_mapping = {c: c for c in range(CLASSES)}

    def load_class(self, c):
        self.current = c

    def __len__(self):
        return PER_CLASS_TRAIN

    def __getitem__(self, i):
        return features[self.current][i], self.current, 0


class HeadModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.last = torch.nn.Linear(FEATURE_DIM, CLASSES)
        self.seen_inputs = []

    def forward(self, x, return_pre_logits=False, train=False):
        return x  # the features are the inputs: statistics of given features

    def forward_fc(self, x):
        self.seen_inputs.append(x.clone())
        return self.last(x)


targets_seen, rates_seen = [], []


class RecordingCrossEntropy(torch.nn.CrossEntropyLoss):
    def forward(self, logits, target):
        targets_seen.append(target.clone())
        return super().forward(logits, target)


official_trainer.torch.nn.CrossEntropyLoss = RecordingCrossEntropy
original_step = torch.optim.AdamW.step


def recording_step(self, *args, **kwargs):
    rates_seen.append(self.param_groups[0]["lr"])
    return original_step(self, *args, **kwargs)


torch.optim.AdamW.step = recording_step

torch.manual_seed(3)
model = HeadModel()
put("alignment.head.weight.initial", model.last.weight)
put("alignment.head.bias.initial", model.last.bias)
this = types.SimpleNamespace(
    train_dataset=ClassData(), batch_size=BATCH, workers=0, seed=0, ca_method="multi-centroid", n_centroids=1,
    crct_epochs=CA_EPOCHS, ca_lr=CA_LR, ca_weight_decay=5e-4, ca_batch_size_ratio=RATIO,
    learner=types.SimpleNamespace(gpu=False, cls_mean={}, cls_cov={}, valid_out_dim=CLASSES))
tasks = [list(range(0, PER_TASK)), list(range(PER_TASK, CLASSES))]
for task in tasks:
    official_trainer.Trainer._compute_mean(this, model, class_mask=task)
for c in range(CLASSES):
    put(f"alignment.features.{c}", features[c])
put("alignment.means", torch.stack([this.learner.cls_mean[c][0] for c in range(CLASSES)]).float())
put("alignment.variances", torch.stack([this.learner.cls_cov[c][0] for c in range(CLASSES)]).float())
model.seen_inputs.clear()
torch.manual_seed(5)
official_trainer.Trainer.train_task_adaptive_prediction(this, model, class_mask=tasks, task_id=1)
put("alignment.config", {"classes": CLASSES, "earlier_classes": PER_TASK, "samples_per_class": int(BATCH * RATIO),
                         "epochs": CA_EPOCHS, "learning_rate": CA_LR, "weight_decay": 5e-4, "seed": 5})
put("alignment.batches", torch.stack(model.seen_inputs))          # [epochs x iterations, batch, D]
put("alignment.targets", torch.stack(targets_seen).float())     # [epochs x iterations, batch]
put("alignment.rates", rates_seen)
put("alignment.head.weight.final", model.last.weight)
put("alignment.head.bias.final", model.last.bias)

with open(out_path, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
print(f"wrote {out_path}: {len(fixture)} entries")

#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/inflora_official.json from the OFFICIAL InfLoRA code
(liangyanshuo/InfLoRA, commit e08b00e), run on small random inputs.

    mkdir -p /tmp/inflora && git -C /work/.mirror/liangyanshuo+InfLoRA/repo archive HEAD | tar -x -C /tmp/inflora
    /usr/bin/python3 tools/make_inflora_fixture.py /tmp/inflora [out.json]

Nothing of the official code is copied. From the folder given on the command line the script imports
  models/vit_inflora.py   Attention_LoRA: its forward(get_cur_feat=True) accumulates the input moment cur_matrix;
  methods/inflora.py      InfLoRA.update_DualGPM: the input-space memory, called unbound on a small namespace that
                          holds the attributes it reads (lamb, lame, _cur_task, total_sessions, feature_list, project_type).
Those files import packages that are not installed here (timm, sklearn, scipy, torchvision, ipdb, tqdm); only these
imports are stubbed with empty fake modules (none of their names is used by the two functions above).
The design of the reduction matrix sits inline in InfLoRA._train (the lines after "if self._cur_task == 0:"), so it
cannot be called on its own: it is restated here as plain statements (project the moment, SVD, top-rank left singular
vectors transposed over sqrt(3)) and marked as such in the fixture ("design_source": "restated").

Fixture (D = input width, R = rank, T tasks; matrices as row-major nested lists):
  dim, rank, tasks, lamb, lame
  tasks[t].inputs        [batches][B, N, D] the attention inputs of task t
  tasks[t].moment        [D, D] Attention_LoRA.cur_matrix after all batches (official)
  tasks[t].design        [D, D] 3 A^T A of the reduction matrix designed before task t (a projector: sign-free)
  tasks[t].threshold     update_DualGPM's threshold for task t
  tasks[t].after.kind    'remove' / 'retain' after update_DualGPM with task t's moment (official)
  tasks[t].after.columns columns of the stored basis
  tasks[t].after.projector [D, D] M M^T of the stored basis (official)
"""
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

D, N, B, BATCHES, RANK, TASKS = 8, 5, 3, 2, 2, 4
LAMB, LAME = 0.95, 1.0


def stub(name, **names):
    module = types.ModuleType(name)
    module.__dict__.update(names)
    module.__path__ = []
    sys.modules[name] = module
    return module


def stub_missing_packages():
    anything = lambda *a, **k: None
    class Placeholder:  # noqa: E306
        def __init__(self, *a, **k):
            raise RuntimeError("stubbed")
    stub("timm")
    stub("timm.data", IMAGENET_DEFAULT_MEAN=None, IMAGENET_DEFAULT_STD=None, IMAGENET_INCEPTION_MEAN=None,
         IMAGENET_INCEPTION_STD=None)
    stub("timm.models")
    stub("timm.models.helpers", build_model_with_cfg=anything, resolve_pretrained_cfg=anything, named_apply=anything,
         adapt_input_conv=anything, checkpoint_seq=anything)
    stub("timm.models.layers", PatchEmbed=Placeholder, Mlp=Placeholder, DropPath=Placeholder, trunc_normal_=anything,
         lecun_normal_=anything)
    stub("timm.models.registry", register_model=lambda f: f)
    stub("sklearn")
    stub("sklearn.cluster", KMeans=Placeholder)
    stub("scipy")
    stub("scipy.spatial")
    stub("scipy.spatial.distance", cdist=anything)
    stub("torchvision")
    stub("torchvision.models")
    stub("ipdb", set_trace=anything)
    stub("tqdm", tqdm=lambda x, *a, **k: x)


def task_inputs(t, generator):
    """Inputs whose energy sits mostly in a few task-specific directions (well separated singular values)."""
    directions = torch.linalg.qr(torch.randn(D, D, generator=generator))[0]
    scales = torch.tensor([3.0, 1.5, 0.7, 0.3, 0.1, 0.05, 0.02, 0.01])
    mixing = directions * scales.roll(t * 2)
    return [torch.randn(B, N, D, generator=generator) @ mixing.T for _ in range(BATCHES)]


def main():
    official = Path(sys.argv[1]).resolve()
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "tests/ContinualMoE.Tests/Fixtures/inflora_official.json"
    stub_missing_packages()
    sys.path.insert(0, str(official))
    from models.vit_inflora import Attention_LoRA
    from methods.inflora import InfLoRA

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    attention = Attention_LoRA(D, num_heads=2, r=RANK, n_tasks=TASKS)
    learner = types.SimpleNamespace(lamb=LAMB, lame=LAME, total_sessions=TASKS, _cur_task=-1, feature_list=[], project_type=[])
    tasks = []
    for t in range(TASKS):
        learner._cur_task = t
        inputs = task_inputs(t, generator)
        attention.cur_matrix.zero_()
        attention.n_cur_matrix = 0
        with torch.no_grad():
            for x in inputs:
                attention(x, task=-1, get_cur_feat=True)
        moment = attention.cur_matrix.clone()

        # Restated from InfLoRA._train: the reduction matrix before training task t.
        projected = moment
        if t > 0:
            feature_mat = torch.Tensor(np.dot(learner.feature_list[0], learner.feature_list[0].transpose()))
            projected = moment - feature_mat @ moment if learner.project_type[0] == 'remove' else feature_mat @ moment
        u, _, _ = torch.linalg.svd(projected, full_matrices=False)
        reduction = u[:, :RANK].T / math.sqrt(3)
        design = 3 * reduction.T @ reduction

        threshold = (LAME - LAMB) * t / TASKS + LAMB
        InfLoRA.update_DualGPM(learner, [moment.clone()])   # official
        basis = np.asarray(learner.feature_list[0], dtype=np.float64)
        tasks.append({
            "inputs": [x.tolist() for x in inputs],
            "moment": moment.tolist(),
            "design": design.tolist(),
            "threshold": threshold,
            "after": {"kind": learner.project_type[0], "columns": int(basis.shape[1]), "projector": (basis @ basis.T).tolist()},
        })
        print(f"task {t}: threshold {threshold:.4f} -> {learner.project_type[0]} with {basis.shape[1]} columns")
    fixture = {"source": "liangyanshuo/InfLoRA e08b00e", "design_source": "restated", "dim": D, "rank": RANK,
               "tasks_total": TASKS, "lamb": LAMB, "lame": LAME, "tasks": tasks}
    out.write_text(json.dumps(fixture))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/hide_norga_official.safetensors from the OFFICIAL HiDe-Prompt / NoRGa
modules (Minhchuyentoancbn/MoE_PromptCL, commit e418337), run on small random inputs with fixed weights.

    git -C /work/.mirror/Minhchuyentoancbn+MoE_PromptCL/repo archive HEAD | tar -x -C /tmp/moe
    /usr/bin/python3 tools/make_hide_norga_fixture.py /tmp/moe [out.safetensors]

Nothing of the official code is copied: the script imports, from the folder given on the command line,
  attention.py                          NoRGa_Attention (the gated prefix attention) and PreT_Attention (HiDe's),
  peft/prompt/norga_prompt.py           EPrompt with act_scale (prompt pool, prompt momentum, batch layout),
  peft/prompt/hide_prompt.py            EPrompt without the gate,
  vits/norga_prompt_vision_transformer.py  MlpMapping (the TII network's residual MLP).
The last file imports timm, which is not installed here: only those imports are stubbed with a tiny fake `timm`
package in sys.modules (names that MlpMapping never touches). Only torch and the standard library are needed.

What the fixture holds (float32; B samples, N tokens, D = H * d, L prefix length, T tasks, two prompted layers):
  weights.layer{l}.qkv.weight/bias, weights.layer{l}.proj.weight/bias   the attention weights of prompted layer l
  weights.prompt [layers, 2, T, L, H, d], weights.act_scale [layers, 2, 1, 1] (tau, alpha; not 1 so that they matter)
  input.x [B, N, D], input.eval_tasks [B] (per-sample prompt ids, as TII hands them over at test time)
  expected.{norga_sigmoid,norga_tanh,hide}.{train,eval}.out [layers, B, N, D]
      the official modules' outputs: "train" is the official training call (prompt_mask = task TRAIN_TASK for the
      whole batch, prompt_momentum MOMENTUM), "eval" the test-time call (prompt_idx = input.eval_tasks);
      these go through EPrompt's batch reshape exactly as the official model does;
  expected.{...}.{train,eval}.per_sample_out  the same attention modules fed each sample's own (key, value) prefix,
      laid out with permute: what the method intends and what the project runs by default;
  expected.norga_sigmoid.train.grad.prompt / .grad.act_scale   gradients of sum(out * input.grad_weights) (official);
  expected.norga_sigmoid.train.prefix.{keys,values} [layers, B, H, L, d]  the official prefixes as the attention
      sees them (after EPrompt's reshape and the attention's permute): the prompt-momentum fixture;
  tii.net0.weight/bias, tii.net1.weight/bias, tii.norm.weight/bias, tii.head.weight/bias, tii.input [B, D],
  expected.tii.logits [B, C]: MlpMapping(dim=D, hidden=[2]) followed by the classifier head (forward(fc_only=True)).
"""
import json
import struct
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

B, B_EVAL, N, H, HEAD_DIM, L, T, LAYERS, CLASSES = 4, 5, 5, 2, 4, 3, 3, 2, 6
D = H * HEAD_DIM
TRAIN_TASK, MOMENTUM = 2, 0.01


def stub_timm():
    """MlpMapping's file imports timm at module level; none of these names is used by MlpMapping."""
    def module(name, **names):
        m = types.ModuleType(name)
        m.__dict__.update(names)
        sys.modules[name] = m
        return m
    unused = lambda *a, **k: None  # noqa: E731
    module("timm")
    module("timm.data", IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406), IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225),
           IMAGENET_INCEPTION_MEAN=(0.5, 0.5, 0.5), IMAGENET_INCEPTION_STD=(0.5, 0.5, 0.5))
    module("timm.models")
    module("timm.models.helpers", build_model_with_cfg=unused, resolve_pretrained_cfg=unused, named_apply=unused,
           adapt_input_conv=unused, checkpoint_seq=unused)
    module("timm.models.layers", PatchEmbed=nn.Identity, Mlp=nn.Identity, DropPath=nn.Identity, trunc_normal_=unused,
           lecun_normal_=unused)
    module("timm.models.registry", register_model=lambda f: f)


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"generator": "tools/make_hide_norga_fixture.py", "torch": torch.__version__,
                              "official": "Minhchuyentoancbn/MoE_PromptCL e418337"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for c in chunks:
            f.write(c)


def main():
    official = Path(sys.argv[1]).resolve()
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else \
        Path(__file__).resolve().parents[1] / "tests/ContinualMoE.Tests/Fixtures/hide_norga_official.safetensors"
    sys.path.insert(0, str(official))
    stub_timm()
    from attention import NoRGa_Attention, PreT_Attention
    from peft.prompt.norga_prompt import EPrompt as NorgaPrompt
    from peft.prompt.hide_prompt import EPrompt as HidePrompt
    from vits.norga_prompt_vision_transformer import MlpMapping

    g = torch.Generator().manual_seed(20261201)

    def rnd(*shape, std=0.3):
        return torch.randn(*shape, generator=g) * std

    tensors = {}
    # Attention weights of the two prompted layers (qkv_bias=True as in the ViT-B/16 the scripts use).
    attn_weights = []
    for l in range(LAYERS):
        w = {"qkv.weight": rnd(3 * D, D), "qkv.bias": rnd(3 * D), "proj.weight": rnd(D, D), "proj.bias": rnd(D)}
        attn_weights.append(w)
        for k, v in w.items():
            tensors[f"weights.layer{l}.{k}"] = v
    prompt = rnd(LAYERS, 2, T, L, H, HEAD_DIM, std=1.0)
    act_scale = (1 + rnd(LAYERS, 2, 1, 1, std=0.5))
    x = rnd(B_EVAL, N, D, std=1.0)
    eval_tasks = torch.tensor([0, 2, 1, 2, 1])
    grad_weights = rnd(LAYERS, B, N, D, std=1.0)
    tensors.update({"weights.prompt": prompt, "weights.act_scale": act_scale, "input.x": x,
                    "input.eval_tasks": eval_tasks.float(), "input.grad_weights": grad_weights})

    def attention_modules(kind):
        mods = []
        for l in range(LAYERS):
            m = (NoRGa_Attention if kind != "hide" else PreT_Attention)(D, num_heads=H, qkv_bias=True)
            with torch.no_grad():
                m.qkv.weight.copy_(attn_weights[l]["qkv.weight"]); m.qkv.bias.copy_(attn_weights[l]["qkv.bias"])
                m.proj.weight.copy_(attn_weights[l]["proj.weight"]); m.proj.bias.copy_(attn_weights[l]["proj.bias"])
            mods.append(m.eval())
        return mods

    def make_prompt(kind):
        cls = NorgaPrompt if kind != "hide" else HidePrompt
        p = cls(length=L, embed_dim=D, prompt_pool=True, pool_size=T, top_k=1, num_layers=LAYERS,
                use_prefix_tune_for_e_prompt=True, num_heads=H, prompt_key=True)
        with torch.no_grad():
            p.prompt.copy_(prompt)
            if kind != "hide":
                p.act_scale.copy_(act_scale)
        return p

    def run(kind, mods, gate, e_prompt, batch_prompt, scales, xb):
        outs = []
        for l in range(LAYERS):
            if kind == "hide":
                outs.append(mods[l](xb, batch_prompt[l]))
            else:
                outs.append(mods[l](xb, batch_prompt[l], scales[l], gate))
        return torch.stack(outs)

    for kind, gate in (("norga_sigmoid", nn.Sigmoid()), ("norga_tanh", nn.Tanh()), ("hide", None)):
        mods = attention_modules(kind)
        e_prompt = make_prompt(kind)
        scales = e_prompt.act_scale if kind != "hide" else None

        # Training call: the official ViT passes prompt_mask = task id for every sample and the momentum.
        xb = x[:B]
        mask = torch.full((B, 1), TRAIN_TASK, dtype=torch.int64)
        res = e_prompt(xb, prompt_mask=mask, prompt_idx=mask, prompt_momentum=MOMENTUM)
        out = run(kind, mods, gate, e_prompt, res["batched_prompt"], scales, xb)
        tensors[f"expected.{kind}.train.out"] = out
        if kind == "norga_sigmoid":
            (out * grad_weights).sum().backward()
            tensors["expected.norga_sigmoid.train.grad.prompt"] = e_prompt.prompt.grad.clone()
            tensors["expected.norga_sigmoid.train.grad.act_scale"] = e_prompt.act_scale.grad.clone()
            seen = res["batched_prompt"].detach().permute(0, 2, 1, 4, 3, 5)  # layers, 2, B, H, L, d
            tensors["expected.norga_sigmoid.train.prefix.keys"] = seen[:, 0]
            tensors["expected.norga_sigmoid.train.prefix.values"] = seen[:, 1]
        with torch.no_grad():
            own = (1 - MOMENTUM) * prompt[:, :, TRAIN_TASK] + MOMENTUM * prompt[:, :, :TRAIN_TASK].mean(2)
            per_sample = own.unsqueeze(1).expand(LAYERS, B, 2, L, H, HEAD_DIM)
            tensors[f"expected.{kind}.train.per_sample_out"] = run(kind, mods, gate, e_prompt, per_sample, scales, xb)

            # Test-time call: per-sample prompt ids from TII, no momentum.
            idx = eval_tasks.unsqueeze(-1)
            res = e_prompt(x, prompt_idx=idx)
            tensors[f"expected.{kind}.eval.out"] = run(kind, mods, gate, e_prompt, res["batched_prompt"], scales, x)
            per_sample = prompt[:, :, eval_tasks].permute(0, 2, 1, 3, 4, 5)  # layers, B, 2, L, H, d
            tensors[f"expected.{kind}.eval.per_sample_out"] = run(kind, mods, gate, e_prompt, per_sample, scales, x)

    # TII network: residual MLP (hidden 2 x D) + LayerNorm, then the linear head.
    mlp = MlpMapping(dim=D, hidden=[2])
    head = nn.Linear(D, CLASSES)
    with torch.no_grad():
        for name, p in list(mlp.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]:
            p.copy_((1 if name.endswith("norm.weight") else 0) + rnd(*p.shape))
    mlp.eval()
    features = rnd(B, D, std=1.0)
    with torch.no_grad():
        logits = head(mlp(features))
    names = {"net.0.0.weight": "tii.net0.weight", "net.0.0.bias": "tii.net0.bias",
             "net.1.0.weight": "tii.net1.weight", "net.1.0.bias": "tii.net1.bias",
             "norm.weight": "tii.norm.weight", "norm.bias": "tii.norm.bias"}
    for n, p in mlp.named_parameters():
        tensors[names[n]] = p
    tensors["tii.head.weight"], tensors["tii.head.bias"] = head.weight, head.bias
    tensors["tii.input"], tensors["expected.tii.logits"] = features, logits

    write_safetensors(out_path, tensors)
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The PyTorch side of `continual-moe bench lm`: the same GPT-2 folder, batch and measurements in Debian's python3-torch.

An independent GPT-2 written here in plain PyTorch (transformers is not installed): it reads config.json and
model.safetensors of a Hugging Face GPT-2 folder (the layout tools/make_lm_parity_fixture.py writes and the project's
default language model uses) and measures, in tokens/s,
  - training: forward, next-token cross-entropy, backward, AdamW step (lr 1e-4, weight decay 0.01), either LoRA on the
    query and value slices of c_attn (rank 8, alpha 16: A random, B zero) or every weight;
  - generation: greedy decoding of a batch with a key/value cache (keys/values concatenated per step, as the C# side does).
Attention is written out (softmax(q k^T / sqrt(d)) v with a causal mask): torch 1.13 has no scaled_dot_product_attention.
Inputs are seeded random ids. One JSON line per (precision, training) measurement on stdout.

Run: /usr/bin/python3 tools/bench_lm_torch.py --model FOLDER [--batch-size 8 --sequence-length 64 --prompt-tokens 16
     --new-tokens 32 --precision both --training both --threads 2 --seconds 3]
"""
import argparse
import json
import math
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = bytearray(data[8 + length + start:8 + length + end])
        dtype = DTYPES[entry["dtype"]]
        tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(entry["shape"]).clone() if raw else torch.empty(entry["shape"], dtype=dtype)
    return tensors


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class Gpt2(torch.nn.Module):
    def __init__(self, config, weights):
        super().__init__()
        self.width, self.heads, self.layers = config["n_embd"], config["n_head"], config["n_layer"]
        self.eps = config.get("layer_norm_epsilon", 1e-5)
        names = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in weights.items()}
        self.w = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(v.float()) for k, v in names.items()
                                         if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias") and k != "lm_head.weight"})
        self.lora = None

    def p(self, name):
        return self.w[name.replace(".", "_")]

    def add_lora(self, rank, alpha):
        torch.manual_seed(0)
        dtype = self.p("wte.weight").dtype
        self.lora = torch.nn.ParameterList()
        for _ in range(self.layers):
            for _ in ("q", "v"):
                a = torch.empty(rank, self.width)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as nn.Linear's weight, LoRA's A
                self.lora.append(torch.nn.Parameter(a.to(dtype)))
                self.lora.append(torch.nn.Parameter(torch.zeros(self.width, rank, dtype=dtype)))
        self.lora_scaling = alpha / rank

    def forward(self, ids, cache=None, last_only=False):
        b, t = ids.shape
        past = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        x = F.embedding(ids, self.p("wte.weight")) + F.embedding(torch.arange(past, past + t), self.p("wpe.weight"))[None]
        hd = self.width // self.heads
        for i in range(self.layers):
            pre = f"h.{i}."
            h = F.layer_norm(x, (self.width,), self.p(pre + "ln_1.weight"), self.p(pre + "ln_1.bias"), self.eps)
            qkv = torch.addmm(self.p(pre + "attn.c_attn.bias"), h.reshape(-1, self.width), self.p(pre + "attn.c_attn.weight")).view(b, t, 3 * self.width)
            q, k, v = qkv.split(self.width, dim=-1)
            if self.lora is not None:
                aq, bq, av, bv = self.lora[4 * i:4 * i + 4]
                q = q + (h @ aq.t() @ bq.t()) * self.lora_scaling
                v = v + (h @ av.t() @ bv.t()) * self.lora_scaling
            q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
            if cache is not None:
                if cache[i] is not None:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                cache[i] = (k, v)
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
            if t > 1:
                allowed = torch.ones(t, past + t, dtype=torch.bool).tril(diagonal=past)
                scores = scores.masked_fill(~allowed, float("-inf"))
            a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b * t, self.width)
            x = x + torch.addmm(self.p(pre + "attn.c_proj.bias"), a, self.p(pre + "attn.c_proj.weight")).view(b, t, self.width)
            h = F.layer_norm(x, (self.width,), self.p(pre + "ln_2.weight"), self.p(pre + "ln_2.bias"), self.eps)
            m = gelu_tanh(torch.addmm(self.p(pre + "mlp.c_fc.bias"), h.reshape(b * t, self.width), self.p(pre + "mlp.c_fc.weight")))
            x = x + torch.addmm(self.p(pre + "mlp.c_proj.bias"), m, self.p(pre + "mlp.c_proj.weight")).view(b, t, self.width)
        x = F.layer_norm(x, (self.width,), self.p("ln_f.weight"), self.p("ln_f.bias"), self.eps)
        if last_only:
            x = x[:, -1:]
        return x @ self.p("wte.weight").t()  # tied head


def per_second(seconds, step):
    step()
    step()
    start, calls = time.perf_counter(), 0
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def measure(folder, dtype, training, args):
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "gpt2":
        raise SystemExit(f"{folder}: only GPT-2 folders are supported by this script, got {config.get('model_type')}")
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    weights = {k: v for f in files for k, v in read_safetensors(folder / f).items()}
    model = Gpt2(config, weights).to(dtype)
    vocab = config["vocab_size"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.batch_size, args.sequence_length + 1), generator=g)
    prompts = torch.randint(0, vocab, (args.batch_size, args.prompt_tokens), generator=g)
    if training == "full":
        trainable = list(model.parameters())
    else:
        model.requires_grad_(False)
        model.add_lora(8, 16.0)
        model.lora.to(dtype)
        trainable = list(model.lora.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    inputs, targets = ids[:, :-1], ids[:, 1:].reshape(-1)

    def train_step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs).float().reshape(-1, vocab), targets)
        loss.backward()
        optimizer.step()

    def generate():
        with torch.no_grad():
            cache = [None] * model.layers
            step_ids = prompts
            for _ in range(args.new_tokens):
                step_ids = model(step_ids, cache, last_only=True)[:, -1].float().argmax(-1, keepdim=True)

    train = per_second(args.seconds, train_step) * args.batch_size * args.sequence_length
    gen = per_second(args.seconds, generate) * args.batch_size * args.new_tokens
    return {"precision": "bf16" if dtype == torch.bfloat16 else "fp32",
            "training": "full" if training == "full" else "lora q,v r8", "threads": torch.get_num_threads(),
            "train_tokens_per_s": train, "generate_tokens_per_s": gen, "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"])
    parser.add_argument("--training", default="both", choices=["lora", "full", "both"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    folder = Path(args.model)
    dtypes = {"fp32": [torch.float32], "bf16": [torch.bfloat16], "both": [torch.float32, torch.bfloat16]}[args.precision]
    modes = {"lora": ["lora"], "full": ["full"], "both": ["lora", "full"]}[args.training]
    for dtype in dtypes:
        for mode in modes:
            print(json.dumps(measure(folder, dtype, mode, args)), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The PyTorch side of `continual-moe bench lm`: the same model folder, batch and measurements in Debian's python3-torch.

An independent GPT-2 and LLaMA (also Mistral and Qwen2) written here in plain PyTorch (transformers is not installed):
it reads config.json and the safetensors of a Hugging Face folder (the layout tools/make_lm_parity_fixture.py writes and
the project's default language model uses) and measures, in tokens/s,
  - training: forward, next-token cross-entropy, backward, AdamW step (lr 1e-4, weight decay 0.01), either LoRA on the
    query and value projections (rank 8, alpha 16: A random, B zero) or every weight. LoRA weights stay float32 in a
    bf16 model, the layer input is cast to float32 and the delta back, as peft does by default (autocast_adapter_dtype)
    and as the C# side does (what a method trains stays fp32, docs/methods/precision.md);
  - generation: greedy decoding of a batch with a key/value cache (keys/values concatenated per step, as the C# side does).
Attention is written out (softmax(q k^T / sqrt(d)) v with a causal mask): torch 1.13 has no scaled_dot_product_attention.
LLaMA: RMSNorm computed in float32 and cast back (as transformers' LlamaRMSNorm), rotary embeddings with rope_theta and
"linear"/"llama3" scaling, SwiGLU, grouped-query attention, tied or untied head, Qwen2's q/k/v biases.
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


def lora_delta(h, a, b, scaling):
    """scaling * B A h in the adapter's dtype (float32), cast back to the layer's."""
    return ((h.to(a.dtype) @ a.t() @ b.t()) * scaling).to(h.dtype)


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
        self.lora = torch.nn.ParameterList()
        for _ in range(self.layers):
            for _ in ("q", "v"):
                a = torch.empty(rank, self.width)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as nn.Linear's weight, LoRA's A
                self.lora.append(torch.nn.Parameter(a))
                self.lora.append(torch.nn.Parameter(torch.zeros(self.width, rank)))
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
                q = q + lora_delta(h, aq, bq, self.lora_scaling)
                v = v + lora_delta(h, av, bv, self.lora_scaling)
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


def inverse_frequencies(config, head_dim):
    theta = config.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / inv
        smooth = (original / wavelength - low) / (high - low)
        blended = (1 - smooth) * inv / factor + smooth * inv
        inv = torch.where(wavelength > original / low, inv / factor, torch.where(wavelength < original / high, inv, blended))
    return inv


class Llama(torch.nn.Module):
    def __init__(self, config, weights):
        super().__init__()
        self.width, self.heads, self.layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
        self.kv_heads = config.get("num_key_value_heads", self.heads)
        self.head_dim = config.get("head_dim", self.width // self.heads)
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.tied = config.get("tie_word_embeddings", False)
        self.inv = inverse_frequencies(config, self.head_dim)
        self.w = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(v.float()) for k, v in weights.items()
                                         if not k.endswith("rotary_emb.inv_freq") and not (self.tied and k == "lm_head.weight")})
        self.lora = None

    def p(self, name):
        return self.w[name.replace(".", "_")]

    def has(self, name):
        return name.replace(".", "_") in self.w

    def add_lora(self, rank, alpha):
        torch.manual_seed(0)
        self.lora = torch.nn.ParameterList()
        for _ in range(self.layers):
            for out in (self.heads * self.head_dim, self.kv_heads * self.head_dim):
                a = torch.empty(rank, self.width)
                torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                self.lora.append(torch.nn.Parameter(a))
                self.lora.append(torch.nn.Parameter(torch.zeros(out, rank)))
        self.lora_scaling = alpha / rank

    def norm(self, x, name):
        x32 = x.float()
        return self.p(name) * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def linear(self, name, x):
        bias = self.p(name + ".bias") if self.has(name + ".bias") else None
        return F.linear(x, self.p(name + ".weight"), bias)

    def forward(self, ids, cache=None, last_only=False):
        b, t = ids.shape
        past = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        angles = torch.arange(past, past + t, dtype=torch.float32)[:, None] * self.inv[None, :]
        both = torch.cat([angles, angles], -1)
        x = F.embedding(ids, self.p("model.embed_tokens.weight"))
        cos, sin = both.cos().to(x.dtype), both.sin().to(x.dtype)
        hd, groups = self.head_dim, self.heads // self.kv_heads

        def rotate(z):
            half = hd // 2
            return z * cos + torch.cat([-z[..., half:], z[..., :half]], dim=-1) * sin

        for i in range(self.layers):
            pre = f"model.layers.{i}."
            h = self.norm(x, pre + "input_layernorm.weight")
            q = self.linear(pre + "self_attn.q_proj", h)
            k = self.linear(pre + "self_attn.k_proj", h)
            v = self.linear(pre + "self_attn.v_proj", h)
            if self.lora is not None:
                aq, bq, av, bv = self.lora[4 * i:4 * i + 4]
                q = q + lora_delta(h, aq, bq, self.lora_scaling)
                v = v + lora_delta(h, av, bv, self.lora_scaling)
            q = rotate(q.view(b, t, self.heads, hd).transpose(1, 2))
            k = rotate(k.view(b, t, self.kv_heads, hd).transpose(1, 2))
            v = v.view(b, t, self.kv_heads, hd).transpose(1, 2)
            if cache is not None:
                if cache[i] is not None:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                cache[i] = (k, v)
            if groups > 1:
                k = k.repeat_interleave(groups, dim=1)
                v = v.repeat_interleave(groups, dim=1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
            if t > 1:
                allowed = torch.ones(t, past + t, dtype=torch.bool).tril(diagonal=past)
                scores = scores.masked_fill(~allowed, float("-inf"))
            a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, self.heads * hd)
            x = x + self.linear(pre + "self_attn.o_proj", a)
            h = self.norm(x, pre + "post_attention_layernorm.weight")
            m = F.silu(self.linear(pre + "mlp.gate_proj", h)) * self.linear(pre + "mlp.up_proj", h)
            x = x + self.linear(pre + "mlp.down_proj", m)
        x = self.norm(x, "model.norm.weight")
        if last_only:
            x = x[:, -1:]
        head = self.p("model.embed_tokens.weight") if self.tied else self.p("lm_head.weight")
        return x @ head.t()


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
    architectures = {"gpt2": Gpt2, "llama": Llama, "mistral": Llama, "qwen2": Llama}
    if config.get("model_type") not in architectures:
        raise SystemExit(f"{folder}: model_type {config.get('model_type')} is not one of {', '.join(architectures)}")
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    weights = {k: v for f in files for k, v in read_safetensors(folder / f).items()}
    model = architectures[config["model_type"]](config, weights).to(dtype)
    vocab = config["vocab_size"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.batch_size, args.sequence_length + 1), generator=g)
    prompts = torch.randint(0, vocab, (args.batch_size, args.prompt_tokens), generator=g)
    if training == "full":
        trainable = list(model.parameters())
    else:
        model.requires_grad_(False)
        model.add_lora(8, 16.0)
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

#!/usr/bin/python3
"""Parity fixtures for the decoder language models (src/ContinualMoE/Backbones/Language).

Writes three tiny random-weight models in the Hugging Face folder layout, each with a forward pass written here from
the equations in plain PyTorch (Debian's python3-torch 1.13; `transformers` is not installed, so this is the
independent reference):

  gpt2_tiny/   GPT-2: learned positions, LayerNorm, tanh GELU ("gelu_new"), fused c_attn stored as Conv1D [in, out],
               tied embeddings, F32, sharded in two files with model.safetensors.index.json ("transformer." names).
  llama_tiny/  LLaMA: RMSNorm, rotary embeddings with rope_theta and llama3 rope_scaling, SwiGLU, grouped-query
               attention (4 query heads, 2 key/value heads), untied lm_head, F32, one model.safetensors.
  qwen2_tiny/  Qwen2: as LLaMA plus q/k/v biases, tied embeddings, no rope scaling, BF16 weights.

and lm_parity_expected.safetensors with input ids, logits of the reference (float32 from the stored weights), logits with
a fixed linear adapter delta on some layers (delta(x) = x @ A, added to that layer's output), and greedy continuations.

Run: /usr/bin/python3 tools/make_lm_parity_fixture.py [output folder]
(default: tests/ContinualMoE.Tests/Fixtures/lm)
"""
import json
import math
import struct
import sys
from pathlib import Path

import torch

VOCAB = 64
WIDTH = 32
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = WIDTH // HEADS
MLP = 64
POSITIONS = 32
BATCH, TOKENS = 2, 7


# ---------------------------------------------------------------- safetensors (little-endian, header padded to 8)

DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensor_bytes(tensors[name])
        header[name] = {"dtype": DTYPE_NAMES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = metadata or {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for c in chunks:
            f.write(c)


def write_folder(folder, config, weights, shards=1):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    names = sorted(weights)
    if shards == 1:
        write_safetensors(folder / "model.safetensors", weights)
        return
    weight_map, total = {}, 0
    per_shard = math.ceil(len(names) / shards)
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: weights[n] for n in names[s * per_shard:(s + 1) * per_shard]}
        write_safetensors(folder / file, part)
        for n, t in part.items():
            weight_map[n] = file
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------- GPT-2 from the equations

def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def causal_attention(q, k, v):
    """q, k, v: [B, H, T, d]; explicit mask and softmax (not F.scaled_dot_product_attention)."""
    t = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = torch.ones(t, t, dtype=torch.bool).tril()
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


def gpt2_forward(w, ids, adapters=None):
    """adapters: {(block, layer): A} adds x @ A to that logical layer's output (q/k/v are slices of c_attn)."""
    adapters = adapters or {}
    eps = 1e-5
    b, t = ids.shape
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][torch.arange(t)]
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        h = torch.nn.functional.layer_norm(x, (WIDTH,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: weight is [in, out]
        q, k, v = qkv.split(WIDTH, dim=-1)
        q = q + (h @ adapters[(i, "attn.q")] if (i, "attn.q") in adapters else 0)
        k = k + (h @ adapters[(i, "attn.k")] if (i, "attn.k") in adapters else 0)
        v = v + (h @ adapters[(i, "attn.v")] if (i, "attn.v") in adapters else 0)
        heads = lambda z: z.view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        a = causal_attention(heads(q), heads(k), heads(v)).transpose(1, 2).reshape(b, t, WIDTH)
        out = a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        out = out + (a @ adapters[(i, "attn.out")] if (i, "attn.out") in adapters else 0)
        x = x + out
        h = torch.nn.functional.layer_norm(x, (WIDTH,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
        m = m + (h @ adapters[(i, "mlp.in")] if (i, "mlp.in") in adapters else 0)
        m = gelu_tanh(m)
        o = m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        o = o + (m @ adapters[(i, "mlp.out")] if (i, "mlp.out") in adapters else 0)
        x = x + o
    x = torch.nn.functional.layer_norm(x, (WIDTH,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return x @ w["transformer.wte.weight"].T  # tied lm_head


def gpt2_weights(g):
    rnd = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
    w = {"transformer.wte.weight": rnd(VOCAB, WIDTH, std=0.5), "transformer.wpe.weight": rnd(POSITIONS, WIDTH, std=0.3),
         "transformer.ln_f.weight": 1 + rnd(WIDTH, std=0.1), "transformer.ln_f.bias": rnd(WIDTH, std=0.1)}
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        w.update({p + "ln_1.weight": 1 + rnd(WIDTH, std=0.1), p + "ln_1.bias": rnd(WIDTH, std=0.1),
                  p + "attn.c_attn.weight": rnd(WIDTH, 3 * WIDTH), p + "attn.c_attn.bias": rnd(3 * WIDTH, std=0.1),
                  p + "attn.c_proj.weight": rnd(WIDTH, WIDTH), p + "attn.c_proj.bias": rnd(WIDTH, std=0.1),
                  p + "ln_2.weight": 1 + rnd(WIDTH, std=0.1), p + "ln_2.bias": rnd(WIDTH, std=0.1),
                  p + "mlp.c_fc.weight": rnd(WIDTH, MLP), p + "mlp.c_fc.bias": rnd(MLP, std=0.1),
                  p + "mlp.c_proj.weight": rnd(MLP, WIDTH), p + "mlp.c_proj.bias": rnd(WIDTH, std=0.1)})
    return w


GPT2_CONFIG = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": VOCAB, "n_embd": WIDTH,
               "n_layer": LAYERS, "n_head": HEADS, "n_positions": POSITIONS, "n_inner": MLP,
               "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "bos_token_id": 1, "eos_token_id": 2,
               "tie_word_embeddings": True, "torch_dtype": "float32"}


# ---------------------------------------------------------------- LLaMA / Qwen2 from the equations

def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inverse_frequencies(config):
    theta = config["rope_theta"]
    inv = 1.0 / theta ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
    scaling = config.get("rope_scaling")
    if scaling and scaling["rope_type"] == "llama3":
        # Frequency-dependent scaling: long wavelengths divided by the factor, short ones kept, a smooth blend between.
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelength = 2 * math.pi / inv
        low_wavelength, high_wavelength = original / low, original / high
        smooth = (original / wavelength - low) / (high - low)
        blended = (1 - smooth) * inv / factor + smooth * inv
        inv = torch.where(wavelength > low_wavelength, inv / factor, torch.where(wavelength < high_wavelength, inv, blended))
    return inv


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def llama_forward(w, ids, config, adapters=None):
    adapters = adapters or {}
    eps = config["rms_norm_eps"]
    b, t = ids.shape
    angles = torch.arange(t, dtype=torch.float32)[:, None] * inverse_frequencies(config)[None, :]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    qkv_bias = config["model_type"] == "qwen2"

    def linear(name, x, site=None, bias=False):
        y = x @ w[name + ".weight"].T
        if bias:
            y = y + w[name + ".bias"]
        if site in adapters:
            y = y + x @ adapters[site]
        return y

    x = w["model.embed_tokens.weight"][ids]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(p + "self_attn.q_proj", h, (i, "attn.q"), qkv_bias).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = linear(p + "self_attn.k_proj", h, (i, "attn.k"), qkv_bias).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = linear(p + "self_attn.v_proj", h, (i, "attn.v"), qkv_bias).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        a = causal_attention(q, k, v).transpose(1, 2).reshape(b, t, WIDTH)
        x = x + linear(p + "self_attn.o_proj", a, (i, "attn.out"))
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = linear(p + "mlp.gate_proj", h, (i, "mlp.gate"))
        up = linear(p + "mlp.up_proj", h, (i, "mlp.in"))
        m = torch.nn.functional.silu(gate) * up
        x = x + linear(p + "mlp.down_proj", m, (i, "mlp.out"))
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def llama_weights(g, config):
    rnd = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
    kv = KV_HEADS * HEAD_DIM
    w = {"model.embed_tokens.weight": rnd(VOCAB, WIDTH, std=0.5), "model.norm.weight": 1 + rnd(WIDTH, std=0.1)}
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(VOCAB, WIDTH)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w.update({p + "input_layernorm.weight": 1 + rnd(WIDTH, std=0.1),
                  p + "self_attn.q_proj.weight": rnd(WIDTH, WIDTH), p + "self_attn.k_proj.weight": rnd(kv, WIDTH),
                  p + "self_attn.v_proj.weight": rnd(kv, WIDTH), p + "self_attn.o_proj.weight": rnd(WIDTH, WIDTH),
                  p + "post_attention_layernorm.weight": 1 + rnd(WIDTH, std=0.1),
                  p + "mlp.gate_proj.weight": rnd(MLP, WIDTH), p + "mlp.up_proj.weight": rnd(MLP, WIDTH),
                  p + "mlp.down_proj.weight": rnd(WIDTH, MLP)})
        if config["model_type"] == "qwen2":
            w.update({p + "self_attn.q_proj.bias": rnd(WIDTH, std=0.1), p + "self_attn.k_proj.bias": rnd(kv, std=0.1),
                      p + "self_attn.v_proj.bias": rnd(kv, std=0.1)})
    return w


LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB, "hidden_size": WIDTH,
                "intermediate_size": MLP, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                "num_key_value_heads": KV_HEADS, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
                "rope_theta": 10000.0, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 64},
                "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}

QWEN2_CONFIG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB, "hidden_size": WIDTH,
                "intermediate_size": MLP, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                "num_key_value_heads": KV_HEADS, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "hidden_act": "silu", "rope_scaling": None, "use_sliding_window": False,
                "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}


def greedy(forward, ids, steps):
    for _ in range(steps):
        next_id = forward(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    return ids


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/ContinualMoE.Tests/Fixtures/lm"
    g = torch.Generator().manual_seed(20261201)
    expected = {}
    with torch.no_grad():
        # GPT-2, sharded, F32
        w = gpt2_weights(g)
        write_folder(out / "gpt2_tiny", GPT2_CONFIG, w, shards=2)
        ids = torch.randint(3, VOCAB, (BATCH, TOKENS), generator=g)
        adapters = {(1, "attn.v"): torch.randn(WIDTH, WIDTH, generator=g) * 0.3,
                    (0, "mlp.out"): torch.randn(MLP, WIDTH, generator=g) * 0.3}
        expected.update({"gpt2.input_ids": ids, "gpt2.logits": gpt2_forward(w, ids),
                         "gpt2.adapter.1.attn.v": adapters[(1, "attn.v")], "gpt2.adapter.0.mlp.out": adapters[(0, "mlp.out")],
                         "gpt2.adapted_logits": gpt2_forward(w, ids, adapters),
                         "gpt2.greedy": greedy(lambda z: gpt2_forward(w, z), ids[:1, :4], 6)})

        # LLaMA, one file, F32, llama3 rope scaling, untied head
        w = llama_weights(g, LLAMA_CONFIG)
        write_folder(out / "llama_tiny", LLAMA_CONFIG, w)
        ids = torch.randint(3, VOCAB, (BATCH, TOKENS), generator=g)
        adapters = {(0, "mlp.gate"): torch.randn(WIDTH, MLP, generator=g) * 0.3,
                    (1, "attn.k"): torch.randn(WIDTH, KV_HEADS * HEAD_DIM, generator=g) * 0.3}
        expected.update({"llama.input_ids": ids, "llama.logits": llama_forward(w, ids, LLAMA_CONFIG),
                         "llama.adapter.0.mlp.gate": adapters[(0, "mlp.gate")], "llama.adapter.1.attn.k": adapters[(1, "attn.k")],
                         "llama.adapted_logits": llama_forward(w, ids, LLAMA_CONFIG, adapters),
                         "llama.greedy": greedy(lambda z: llama_forward(w, z, LLAMA_CONFIG), ids[:1, :4], 6)})

        # Qwen2, one file, BF16 weights (the reference runs in float32 on the bf16-rounded values), tied head
        w = {k: v.to(torch.bfloat16) for k, v in llama_weights(g, QWEN2_CONFIG).items()}
        write_folder(out / "qwen2_tiny", QWEN2_CONFIG, w)
        w32 = {k: v.float() for k, v in w.items()}
        ids = torch.randint(3, VOCAB, (BATCH, TOKENS), generator=g)
        expected.update({"qwen2.input_ids": ids, "qwen2.logits": llama_forward(w32, ids, QWEN2_CONFIG),
                         "qwen2.greedy": greedy(lambda z: llama_forward(w32, z, QWEN2_CONFIG), ids[:1, :4], 6)})

    write_safetensors(out / "lm_parity_expected.safetensors", expected,
                      {"generator": "tools/make_lm_parity_fixture.py", "torch": torch.__version__})
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()

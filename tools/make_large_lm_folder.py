#!/usr/bin/python3
"""A large random-weight LLaMA folder for measuring how much memory loading takes (not a fixture: write it to /tmp and
delete it afterwards).

Default geometry: width 1024, 16 blocks, 16 heads (8 key/value heads), SwiGLU 2816, vocabulary 1024, untied head:
184M parameters, 0.74 GB in F32 ("--dtype bf16" halves it), in two shards with model.safetensors.index.json, written
with the parity fixture's safetensors writer (tools/make_lm_parity_fixture.py). Shards are generated and written one at
a time so this script needs about one shard of memory.

Run: /usr/bin/python3 tools/make_large_lm_folder.py /tmp/large-lm [--width 1024 --blocks 16 --dtype f32 --shards 2]
"""
import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_lm_parity_fixture import write_safetensors  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--mlp", type=int, default=2816)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    head_dim = args.width // args.heads
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": args.vocab, "hidden_size": args.width,
        "intermediate_size": args.mlp, "num_hidden_layers": args.blocks, "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32" if dtype == torch.float32 else "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    def shapes():
        yield "model.embed_tokens.weight", (args.vocab, args.width)
        for b in range(args.blocks):
            p = f"model.layers.{b}."
            yield p + "input_layernorm.weight", (args.width,)
            yield p + "post_attention_layernorm.weight", (args.width,)
            yield p + "self_attn.q_proj.weight", (args.heads * head_dim, args.width)
            yield p + "self_attn.k_proj.weight", (args.kv_heads * head_dim, args.width)
            yield p + "self_attn.v_proj.weight", (args.kv_heads * head_dim, args.width)
            yield p + "self_attn.o_proj.weight", (args.width, args.heads * head_dim)
            yield p + "mlp.gate_proj.weight", (args.mlp, args.width)
            yield p + "mlp.up_proj.weight", (args.mlp, args.width)
            yield p + "mlp.down_proj.weight", (args.width, args.mlp)
        yield "model.norm.weight", (args.width,)
        yield "lm_head.weight", (args.vocab, args.width)

    names = sorted(shapes())
    per_shard = math.ceil(len(names) / args.shards)
    generator = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for s in range(args.shards):
        file = f"model-{s + 1:05d}-of-{args.shards:05d}.safetensors"
        part = {}
        for name, shape in names[s * per_shard:(s + 1) * per_shard]:
            part[name] = (torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=generator) * 0.02).to(dtype)
            weight_map[name] = file
            total += part[name].numel() * part[name].element_size()
        write_safetensors(folder / file, part)
        del part
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {folder}: {total / 1e9:.3f} GB of {args.dtype} weights in {args.shards} shards")


if __name__ == "__main__":
    main()

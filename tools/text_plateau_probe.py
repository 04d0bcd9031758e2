#!/usr/bin/python3
"""Issue 12: does one task of the generated text benchmark leave the "one-answer plateau" under a given LoRA recipe?

An independent check of the text preset (configs/text-generated.json) in Debian's python3-torch, written here: the
default small GPT-2 (a Hugging Face folder) with LoRA (A kaiming-uniform as peft, B zero, scaling alpha/rank = 1) on
every linear layer (q, k, v, attention out, fc1, fc2), trained on one task alone with the causal-LM loss on the answer
tokens (label + EOS) and Adam, and scored by label scoring (log p(label + EOS | prompt), argmax over the task's
labels) on 60 test prompts every --every steps. It prints, per LoRA seed, (step, test accuracy, distinct answers):
one distinct answer is the plateau.

The tasks imitate the structure of GeneratedTextBenchmark.cs (same lexicon, labels, sentence form, instruction and
plain prompt format, every third task a translation task whose four targets are scored as labels); the random draws
are Python's, not the C# stream's, so task k here is not task k of a C# run. The tokenizer is a plain byte-level BPE
over the folder's vocab.json/merges.txt.

Run: /usr/bin/python3 tools/text_plateau_probe.py --model ~/.cache/continual-moe/language-models/gpt2-fortunes-v1 \
     --tasks 1,2 --seeds 0,1 --lr 0.003 --epochs 15 [--schedule cosine|constant --batch-size 16 --logit-scale 1]
"""
import argparse
import json
import math
import random
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_lm_torch import gelu_tanh, read_safetensors  # noqa: E402

WORDS = ["ask", "away", "back", "call", "come", "day", "end", "feel", "find", "friend", "give", "good", "great", "hand",
         "hard", "know", "last", "light", "like", "little", "long", "look", "make", "man", "mind", "need", "new", "old",
         "part", "people", "person", "problem", "program", "put", "read", "real", "right", "run", "say", "see", "system",
         "take", "tell", "thing", "think", "try", "want", "way", "well", "year", "computer", "always", "better", "best",
         "first", "never", "nothing", "something", "things", "two", "one", "men", "many", "much", "more", "said", "use",
         "going", "own", "other", "ever"]
LABELS = ["life", "work", "love", "time", "world", "law"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ByteLevelBpe:
    def __init__(self, folder):
        self.vocab = json.loads((folder / "vocab.json").read_text())
        lines = (folder / "merges.txt").read_text().split("\n")[1:]
        self.ranks = {tuple(l.split()): i for i, l in enumerate(x for x in lines if x.strip())}
        self.byte_chars = bytes_to_unicode()
        self.pattern = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")

    def merge(self, word):
        word = list(word)
        while len(word) > 1:
            rank, i = min((self.ranks.get((word[i], word[i + 1]), math.inf), i) for i in range(len(word) - 1))
            if rank == math.inf:
                break
            word[i:i + 2] = [word[i] + word[i + 1]]
        return word

    def encode(self, text):
        pieces = ("".join(self.byte_chars[b] for b in m.encode()) for m in self.pattern.findall(text))
        return [self.vocab[p] for piece in pieces for p in self.merge(piece)]


class LoraGpt2(torch.nn.Module):
    """GPT-2 (frozen, tied head) with LoRA on q, k, v, attention out, fc1 and fc2 of every block."""

    def __init__(self, folder, rank, seed, logit_scale):
        super().__init__()
        config = json.loads((folder / "config.json").read_text())
        raw = read_safetensors(folder / "model.safetensors")
        self.w = {k.removeprefix("transformer."): v.float() for k, v in raw.items()}
        self.d, self.heads, self.blocks = config["n_embd"], config["n_head"], config["n_layer"]
        self.logit_scale = logit_scale
        shapes = {"q": (self.d, self.d), "k": (self.d, self.d), "v": (self.d, self.d), "out": (self.d, self.d),
                  "fc1": (self.d, 4 * self.d), "fc2": (4 * self.d, self.d)}
        generator = torch.Generator().manual_seed(seed)
        self.lora = torch.nn.ParameterDict()
        for i in range(self.blocks):
            for site, (fan_in, fan_out) in shapes.items():
                bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt 5) of a [rank, fan_in] matrix
                self.lora[f"{i}_{site}_a"] = torch.nn.Parameter(torch.empty(rank, fan_in).uniform_(-bound, bound, generator=generator))
                self.lora[f"{i}_{site}_b"] = torch.nn.Parameter(torch.zeros(fan_out, rank))

    def delta(self, i, site, x):
        return x @ self.lora[f"{i}_{site}_a"].t() @ self.lora[f"{i}_{site}_b"].t()

    def forward(self, ids, mask):
        b, t = ids.shape
        d, hd, w = self.d, self.d // self.heads, self.w
        x = F.embedding(ids, w["wte.weight"]) + w["wpe.weight"][:t][None]
        allowed = torch.ones(t, t, dtype=torch.bool).tril()[None, None] & mask[:, None, None, :].bool()
        for i in range(self.blocks):
            p = f"h.{i}."
            h = F.layer_norm(x, (d,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], 1e-5)
            q, k, v = (h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]).split(d, -1)
            q, k, v = q + self.delta(i, "q", h), k + self.delta(i, "k", h), v + self.delta(i, "v", h)
            q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
            scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~allowed, float("-inf"))
            a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
            x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"] + self.delta(i, "out", a)
            h = F.layer_norm(x, (d,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], 1e-5)
            m = gelu_tanh(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"] + self.delta(i, "fc1", h))
            x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"] + self.delta(i, "fc2", m)
        x = F.layer_norm(x, (d,), w["ln_f.weight"], w["ln_f.bias"], 1e-5)
        return (x @ w["wte.weight"].t()) * self.logit_scale


def make_tasks(seed, count, train_per_class, test_per_class):
    """Tasks shaped as GeneratedTextBenchmark's: (instruction, sentence, answer index), answers, per task."""
    r = random.Random(seed)
    lexicon = WORDS[:]
    r.shuffle(lexicon)
    fillers, unused = lexicon[:8], lexicon[8:]

    def sentence(evidence):
        words = [r.choice(evidence) for _ in range(3)] + [r.choice(fillers) for _ in range(2)]
        r.shuffle(words)
        return "Text: " + " ".join(words)

    tasks = []
    for t in range(count):
        if (t + 1) % 3 == 0:
            drawn = r.sample(unused, 8)
            sources, answers = drawn[:4], drawn[4:]
            instruction = f"Task {t + 1}: translate the key word."
            def examples(n):
                return [(instruction, sentence([sources[k]]), k) for k in (r.randrange(4) for _ in range(n))]
            train, test = examples(2 * train_per_class), examples(2 * test_per_class)
        else:
            answers = r.sample(LABELS, 2 + r.randrange(2))
            drawn = r.sample(unused, 3 * len(answers))
            keys = [drawn[3 * l:3 * l + 3] for l in range(len(answers))]
            instruction = f"Task {t + 1}: name the topic. Options: {', '.join(answers)}."
            def examples(n):
                return [(instruction, sentence(keys[l]), l) for _ in range(n) for l in range(len(answers))]
            train, test = examples(train_per_class), examples(test_per_class)
        unused = [u for u in unused if u not in drawn]
        tasks.append((answers, train, test))
    return tasks


def read_tasks(path):
    """Tasks written from GeneratedTextBenchmark.Create (the same examples a C# run trains on)."""
    tasks = []
    for task in json.loads(path.read_text()):
        answers = list(dict.fromkeys(e[2] for e in task["train"]))
        index = lambda e: (e[0], e[1], answers.index(e[2]))
        tasks.append((answers, [index(e) for e in task["train"]], [index(e) for e in task["test"]]))
    return tasks


def padded(rows, eos):
    ids = torch.full((len(rows), max(map(len, rows))), eos, dtype=torch.long)
    mask = torch.zeros(ids.shape)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--tasks", default="1,2")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--data-seed", type=int, default=7)
    parser.add_argument("--tasks-file", type=Path, help="the C# stream's tasks instead of Python's draws: JSON [{name, train: [[instruction, input, output]...], test}]")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--logit-scale", type=float, default=1.0, help="multiplies the frozen head's logits (raises its probability ceiling)")
    parser.add_argument("--every", type=int, default=26)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sequential", action="store_true", help="one LoRA trained on the tasks in turn (as seq-lora: a new Adam and schedule per task)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.model.expanduser()
    bpe = ByteLevelBpe(folder)
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    tasks = read_tasks(args.tasks_file) if args.tasks_file else make_tasks(args.data_seed, max(int(t) for t in args.tasks.split(",")) + 1, 100, 50)
    models = {}
    for t in (int(x) for x in args.tasks.split(",")):
        answers, train, test = tasks[t]
        answer_ids = [bpe.encode(" " + a) + [eos] for a in answers]
        encode = lambda e: (bpe.encode(f"{e[0]}\n{e[1]}\nAnswer:"), e[2])
        train, test = [encode(e) for e in train], [encode(e) for e in test[:60]]
        for seed in (int(s) for s in args.seeds.split(",")):
            torch.manual_seed(seed)
            model = models.setdefault(seed, LoraGpt2(folder, args.rank, seed, args.logit_scale)) if args.sequential \
                else LoraGpt2(folder, args.rank, seed, args.logit_scale)
            optimizer = torch.optim.Adam(model.lora.values(), lr=args.lr)
            order_random = random.Random(seed)
            steps = args.epochs * math.ceil(len(train) / args.batch_size)
            step, history = 0, []
            for _ in range(args.epochs):
                order = list(range(len(train)))
                order_random.shuffle(order)
                for s in range(0, len(order), args.batch_size):
                    rows = [train[i] for i in order[s:s + args.batch_size]]
                    factor = 0.5 * (1 + math.cos(math.pi * step / steps)) if args.schedule == "cosine" else 1.0
                    for group in optimizer.param_groups:
                        group["lr"] = args.lr * factor
                    ids, mask = padded([p + answer_ids[a] for p, a in rows], eos)
                    target = torch.zeros(ids.shape)
                    for i, (p, a) in enumerate(rows):
                        target[i, len(p):len(p) + len(answer_ids[a])] = 1
                    per_token = F.cross_entropy(model(ids, mask)[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
                    loss = (per_token * target[:, 1:].flatten()).sum() / target[:, 1:].sum()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    step += 1
                    if step % args.every == 0 or step == steps:
                        history.append((step, *label_scoring(model, test, answer_ids, eos)))
            print(json.dumps({"task": t, "answers": answers, "seed": seed, "lr": args.lr, "schedule": args.schedule,
                              "epochs": args.epochs, "sequential": args.sequential, "logit_scale": args.logit_scale,
                              "step_accuracy_distinct": [(s, round(a, 1), k) for s, a, k in history]}), flush=True)


@torch.no_grad()
def label_scoring(model, test, answer_ids, eos):
    scores = torch.zeros(len(test), len(answer_ids))
    for k, answer in enumerate(answer_ids):
        ids, mask = padded([p + answer for p, _ in test], eos)
        logp = model(ids, mask).log_softmax(-1)
        for i, (p, _) in enumerate(test):
            scores[i, k] = sum(logp[i, len(p) - 1 + j, token] for j, token in enumerate(answer))
    predicted = scores.argmax(1).tolist()
    right = sum(int(q == a) for q, (_, a) in zip(predicted, test))
    return 100.0 * right / len(test), len(set(predicted))


if __name__ == "__main__":
    main()

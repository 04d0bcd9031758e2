#!/usr/bin/python3
"""Small tokenizer files in the real formats, with ids derived independently of the C# library.

  gpt2_vocab_merges/     vocab.json + merges.txt (GPT-2 byte-level BPE), with <|endoftext|>
  gpt2_tokenizer_json/   the same vocabulary as a Hugging Face tokenizer.json (ByteLevel pre-tokenizer)
  qwen_tokenizer_json/   tokenizer.json with a Split regex pre-tokenizer as Qwen2 uses (digits one by one), special
                         tokens and a tokenizer_config.json with a chat template
  sentencepiece/         tokenizer.model trained with Debian's python3-sentencepiece (BPE, byte fallback, as LLaMA-2)

expected.json lists, per folder, texts and the ids this script's own encoder (byte-level BPE written here from the
algorithm: pre-tokenize, map bytes to printable characters, apply merges by rank) or sentencepiece gives.
The python3-tokenizers package is not available on Debian, so the BPE files are built by this script: the vocabulary is
trained on a small text by repeatedly merging the most frequent pair. Texts are ASCII so that the regexes below
(\\p{L} -> [A-Za-z], \\p{N} -> [0-9]) are exact.

Run: /usr/bin/python3 tools/make_tokenizer_fixtures.py [output folder]  (default tests/ContinualMoE.Tests/Fixtures/tokenizers)
"""
import collections
import json
import re
import sys
from pathlib import Path

CORPUS = ("the quick brown fox jumps over the lazy dog. the dog sleeps; the fox runs! "
          "hello world, hello there. it's 2026 and we're testing 12345 tokens. ") * 4
MERGES = 60
END = "<|endoftext|>"

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def ascii_regex(pattern):
    """The pattern for Python's re on ASCII text: inside a character class \\p{L} becomes A-Za-z, outside [A-Za-z]."""
    inside = re.sub(r"\[([^\]]*)\]", lambda m: "[" + m.group(1).replace(r"\p{L}", "A-Za-z").replace(r"\p{N}", "0-9") + "]", pattern)
    return re.compile(inside.replace(r"\p{L}", "[A-Za-z]").replace(r"\p{N}", "[0-9]"))


def byte_to_char():
    """GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to themselves, the
    others to code points from 256 upwards in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


BYTE_CHARS = byte_to_char()


def to_symbols(piece):
    return [BYTE_CHARS[b] for b in piece.encode("utf-8")]


def train(pieces, count):
    words = collections.Counter(tuple(to_symbols(p)) for p in pieces)
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def encode_piece(piece, ranks):
    symbols = to_symbols(piece)
    while len(symbols) > 1:
        candidates = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(candidates)
        if rank == float("inf"):
            break
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def encode(text, regex, vocab, ranks, specials=()):
    ids = []
    parts = re.split("(" + "|".join(re.escape(s) for s in specials) + ")", text) if specials else [text]
    for part in parts:
        if part in specials:
            ids.append(vocab[part])
            continue
        for piece in regex.findall(part):
            ids.extend(vocab[s] for s in encode_piece(piece, ranks))
    return ids


def bpe_files(out, name, pattern, specials, tokenizer_json, vocab_merges, config=None):
    regex = ascii_regex(pattern)
    merges = train(regex.findall(CORPUS), MERGES)
    vocab = {BYTE_CHARS[b]: i for i, b in enumerate(sorted(BYTE_CHARS, key=lambda b: ord(BYTE_CHARS[b])))}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for s in specials:
        vocab[s] = len(vocab)
    ranks = {pair: i for i, pair in enumerate(merges)}
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    if vocab_merges:
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    if tokenizer_json:
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": pattern == GPT2_PATTERN}
        pre = byte_level if pattern == GPT2_PATTERN else {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}, byte_level]}
        document = {"version": "1.0", "truncation": None, "padding": None,
                    "added_tokens": [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                                      "normalized": False, "special": True} for s in specials],
                    "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
                    "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
                    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                              "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]}}
        (folder / "tokenizer.json").write_text(json.dumps(document, ensure_ascii=False))
    if config:
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    texts = ["the quick brown fox", "hello world, it's 12345 tokens!", "Hello,world  and\nnew lines",
             "unseen words zebra xylophone 987"]
    if specials:
        texts.append(f"the dog{specials[0]}hello")
    return [{"text": t, "ids": encode(t, regex, vocab, ranks, specials)} for t in texts]


def sentencepiece_files(out):
    import sentencepiece as spm
    folder = out / "sentencepiece"
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(CORPUS.split(". ")))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=320,
                                   model_type="bpe", byte_fallback=True, split_digits=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, hard_vocab_limit=False, add_dummy_prefix=True,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   minloglevel=2)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    texts = ["the quick brown fox", "hello world, it's 12345 tokens!", "unseen words zebra \u00e9t\u00e9 987"]
    return [{"text": t, "ids": sp.encode(t)} for t in texts]


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/ContinualMoE.Tests/Fixtures/tokenizers"
    chat = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    expected = {
        "gpt2_vocab_merges": bpe_files(out, "gpt2_vocab_merges", GPT2_PATTERN, [END], False, True),
        "gpt2_tokenizer_json": bpe_files(out, "gpt2_tokenizer_json", GPT2_PATTERN, [END], True, False),
        "qwen_tokenizer_json": bpe_files(out, "qwen_tokenizer_json", QWEN_PATTERN, [END, "<|im_start|>", "<|im_end|>"], True, False,
                                         {"eos_token": "<|im_end|>", "pad_token": END, "chat_template": chat}),
        "sentencepiece": sentencepiece_files(out),
    }
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False).replace("}, {", "},\n {") + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()

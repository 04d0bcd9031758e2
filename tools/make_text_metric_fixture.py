"""Reference values for TextMetrics (tests/ContinualMoE.Tests/Data/Text/TextMetricsTests.cs).

ROUGE-L from the `rouge` package TRACE pins (rouge==1.0.1, github.com/pltrdy/rouge), called as TRACE's metrics.py
score_rouge does: Rouge(metrics=["rouge-l"]).get_scores(target, prediction, avg=True)["rouge-l"]["f"].
Edit similarity from CPython's difflib, which fuzzywuzzy's fuzz.ratio uses when python-Levenshtein is absent (as in
TRACE's requirements): round(100 * SequenceMatcher(None, prediction, target).ratio()).

Usage: python3 tools/make_text_metric_fixture.py <folder holding the rouge package (a pltrdy/rouge checkout at 1.0.1)>
Writes tests/ContinualMoE.Tests/Fixtures/text_metrics.json. Needs `six` (python3-six).
"""
import json
import os
import random
import sys
from difflib import SequenceMatcher

sys.path.insert(0, sys.argv[1])
from rouge import Rouge  # noqa: E402

random.seed(12)
words = ["the", "a", "cat", "dog", "sat", "on", "mat", ".", "is", "and", "council", "budget", "vote", "."]
rouge_cases = []
for _ in range(40):
    target = " ".join(random.choice(words) for _ in range(random.randint(1, 20)))
    prediction = " ".join(random.choice(words) for _ in range(random.randint(1, 20)))
    try:
        f = Rouge(metrics=["rouge-l"]).get_scores(target, prediction, avg=True)["rouge-l"]["f"]
    except ValueError:  # a text without words; TextMetrics scores it 0
        f = 0.0
    rouge_cases.append({"prediction": prediction, "target": target, "f": f})

alphabet = "abcde (){}=:\n"
edit_cases = []
for k in range(40):
    # Lengths on both sides of difflib's 200-character autojunk threshold.
    a = "".join(random.choice(alphabet) for _ in range(random.choice([5, 40, 199, 200, 260])))
    b = "".join(random.choice(alphabet) for _ in range(random.choice([5, 40, 199, 200, 260])))
    if k % 2 == 0:
        b = a[: len(a) // 2] + b[: len(b) // 3] + a[len(a) // 2:]
    edit_cases.append({"prediction": a, "target": b, "percent": int(round(100 * SequenceMatcher(None, a, b).ratio()))})

out = os.path.join(os.path.dirname(__file__), "..", "tests", "ContinualMoE.Tests", "Fixtures", "text_metrics.json")
with open(out, "w") as f:
    json.dump({"rouge_l": rouge_cases, "edit_similarity": edit_cases}, f, indent=0)
print(f"wrote {out}")

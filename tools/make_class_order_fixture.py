#!/usr/bin/env python3
"""Regenerates tests/ContinualMoE.Tests/Fixtures/class_orders.json: the class orders numpy's legacy generator and
CPython's random module give for a few seeds and class counts, as the literature's code draws them:
  numpy:  np.random.seed(s); np.random.permutation(n)          (PyCIL, PILOT, L2P/DualPrompt ports)
  python: random.seed(s); x = list(range(n)); random.shuffle(x)  (official SMoPE trainer.py, HiDe/NoRGa datasets.py)

Run with Debian's Python:  /usr/bin/python3 tools/make_class_order_fixture.py
"""
import json
import platform
import random
import sys
from pathlib import Path

import numpy as np

SEEDS, SIZES = [0, 1, 42, 1993], [10, 100, 200]


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[1] / "tests/ContinualMoE.Tests/Fixtures/class_orders.json"
    cases = []
    for seed in SEEDS:
        for n in SIZES:
            np.random.seed(seed)
            cases.append({"generator": "numpy", "seed": seed, "classes": n, "order": np.random.permutation(n).tolist()})
            random.seed(seed)
            x = list(range(n))
            random.shuffle(x)
            cases.append({"generator": "python", "seed": seed, "classes": n, "order": x})
    document = {"generated_by": "tools/make_class_order_fixture.py", "python": platform.python_version(),
                "numpy": np.__version__, "cases": cases}
    out.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

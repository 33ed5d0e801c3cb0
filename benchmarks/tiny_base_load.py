"""Load time of the shipped tiny base: seconds from a folder to a model and processor ready to caption.

Every repic command that uses the built-in model starts by loading it, so its load time is the least any
such command waits. Each repeat runs in a fresh Python process, with transformers (and repic) already
imported and the clock started just before the load, the way a command meets it: ``first`` is that
process's first load (transformers resolves the model's classes on it), ``again`` a second load in the
same process. Two ways in: transformers' ``AutoModelForImageTextToText`` + ``AutoProcessor``, and repic's
``load_policy`` (which also checks the processor and freezes the vision tower). The median over the
repeats is reported; the target is a first load under 5 s.

Measured on the 2-core development machine at a load of 1.5-2, 5 repeats, one thread: Auto classes 0.21 s
first, 0.33 s again; ``load_policy`` 0.21 s first (0.41 s the slowest), 0.32 s again. The second load in a
process was the slower one (medians). About 80 s in all, most of it importing torch and transformers in
each fresh process.

Usage: python benchmarks/tiny_base_load.py [--repeats 5] [--threads 1]
Prints one JSON line per way in, then a summary line with ``meets_target``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGET_SECONDS = 5.0
# Run in a fresh interpreter: imports first, then two timed loads; prints [first, again] in seconds.
CHILD = """
import json, sys, time
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from repic.models import load_policy
from repic.shipped import shipped_base_path

torch.set_num_threads(int(sys.argv[2]))
folder = shipped_base_path()

def auto():
    return AutoModelForImageTextToText.from_pretrained(folder), AutoProcessor.from_pretrained(folder)

def repic():
    return load_policy(folder)

load = {"auto": auto, "load_policy": repic}[sys.argv[1]]
seconds = []
for _ in range(2):
    started = time.perf_counter()
    load()
    seconds.append(time.perf_counter() - started)
print(json.dumps(seconds))
"""


def measure(way: str, threads: int) -> list[float]:
    done = subprocess.run([sys.executable, "-c", CHILD, way, str(threads)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per way in; the median is reported")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results = {}
    for way in ("auto", "load_policy"):
        runs = [measure(way, args.threads) for _ in range(args.repeats)]
        results[way] = {"first_median_s": round(statistics.median(run[0] for run in runs), 3),
                        "again_median_s": round(statistics.median(run[1] for run in runs), 3),
                        "first_max_s": round(max(run[0] for run in runs), 3)}
        print(json.dumps({"way": way, **results[way], "repeats": args.repeats, "threads": args.threads}), flush=True)
    slowest = max(result["first_median_s"] for result in results.values())
    print(json.dumps({"summary": True, "slowest_first_median_s": slowest, "target_s": TARGET_SECONDS,
                      "meets_target": slowest < TARGET_SECONDS}))


if __name__ == "__main__":
    main()

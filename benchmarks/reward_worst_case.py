"""Reward speed on hostile and megabyte-long model outputs: seconds per ``repic.rewards.compute`` call.

A GRPO step scores every completion, and a policy can write anything: a megabyte of digits after a bracket
(the box parser must not backtrack), of almost-names, of answers, unicode, no text at all. Each case is
scored by every task's reward (OCT, VLT, ICT, ICT-multi) with the default rules and with every optional
rule on (word boundaries, lenient boxes, continuous IoU, the degeneration gate, no caption length cap),
``--repeats`` times; the megabyte cases whose answer sits at the very end are scored with the default rules
and checked to find it. The median of each case's calls is its time; a line per case reports it, and a last
line the slowest case and whether it is under the target (0.5 s a call, so one hostile completion cannot
stall a step).

Measured on the 2-core development machine at a load of 1.5-2, 5 repeats (two runs): the slowest cases are
ICT and ICT-multi with every rule on a megabyte of almost-names or almost-boxes, median 0.37-0.38 s, then
a megabyte of answers 0.19-0.22 s; VLT on a megabyte of digits after a bracket 0.057-0.063 s; with the
default rules no case took over 0.036 s, the megabyte cases read to their end 0.001-0.027 s. About 12 s.

Usage: python benchmarks/reward_worst_case.py [--repeats 5]
Prints one JSON line per case, then a summary line with ``meets_target``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from repic.rewards import RewardOptions, compute

TARGET_SECONDS = 0.5
MEGABYTE = 1_000_000
HOSTILE_OUTPUTS = {
    "none": None,
    "empty": "",
    "unicode": "ünïcødé 🐶 <bø> 是的",
    "digits_after_bracket": "[" + "1" * MEGABYTE,
    "almost_boxes": "[1, " * (MEGABYTE // 4),
    "almost_names": "<bo" * (MEGABYTE // 3),
    "answers": "no yes " * (MEGABYTE // 7),
    "message_without_content": [{"role": "assistant"}],
    "not_text": 12345,
}
SOLUTIONS = {"oct": "yes", "vlt": [0, 0, 10, 10], "ict": "<bo>", "ict_multi": ["<bo>", "bo"]}
RULES = {
    "default": RewardOptions(),
    "every_rule": RewardOptions(word_boundary=True, lenient_boxes=True, continuous_iou=True, degeneration_gate=True,
                                max_caption_chars=10**7),
}
# (name, task, output, solution, reward): the answer after a megabyte, which the reward must still find
READ_TO_THE_END = [
    ("box_after_noise", "vlt", "[" + "1" * MEGABYTE + " [0, 0, 10, 10]", [0, 0, 20, 10], 1.0),
    ("name_at_the_end", "ict", "x" * MEGABYTE + " <bo>", "<bo>", 1.0),
    ("one_of_two_names", "ict_multi", "<bo> " * (MEGABYTE // 5), ["<bo>", "<kim>"], 0.5),
    ("answer_after_noise", "oct", "k" * MEGABYTE + " yes", "yes", 1.0),
]


def timed(repeats: int, task: str, output, solution, options: RewardOptions) -> tuple[float, float]:
    """(median seconds of ``repeats`` calls, the reward)."""
    seconds, reward = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        reward = compute(task, output, solution, options)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="calls per case; the median is reported")
    args = parser.parse_args()
    cases = []
    for output_name, output in HOSTILE_OUTPUTS.items():
        for task, solution in SOLUTIONS.items():
            for rules, options in RULES.items():
                median, reward = timed(args.repeats, task, output, solution, options)
                if not 0.0 <= reward <= 1.0:
                    raise SystemExit(f"{task} on {output_name} ({rules}) scored {reward}, outside [0, 1]")
                cases.append({"case": output_name, "task": task, "rules": rules, "median_s": round(median, 4)})
    for name, task, output, solution, expected in READ_TO_THE_END:
        median, reward = timed(args.repeats, task, output, solution, RULES["default"])
        if reward != expected:
            raise SystemExit(f"{name}: {task} scored {reward}, expected {expected}: the answer at the end was missed")
        cases.append({"case": name, "task": task, "rules": "default", "median_s": round(median, 4)})
    for case in cases:
        print(json.dumps(case), flush=True)
    slowest = max(cases, key=lambda case: case["median_s"])
    print(json.dumps({"summary": True, "cases": len(cases), "repeats": args.repeats, "slowest": slowest,
                      "target_s": TARGET_SECONDS, "meets_target": slowest["median_s"] < TARGET_SECONDS}))


if __name__ == "__main__":
    main()

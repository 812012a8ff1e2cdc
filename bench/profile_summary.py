"""Summarises a py-spy collapsed-stack file (`py-spy record --format raw`): the frames
with the most inclusive and self samples.

    .venv/bin/python bench/profile_summary.py out/broker-hot.txt [--top 25] [--grep TEXT]
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default="", help="only stacks containing this text")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or (args.grep and args.grep not in stack):
                continue
            n = int(count)
            total += n
            frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"-- top {args.top} by {title}")
        for frame, n in counter.most_common(args.top):
            print(f"{100 * n / total:6.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main()

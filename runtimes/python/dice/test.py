"""The seed's dice example: params {"roll": "4d6"} -> a JSON list of 4 integers from 1 to 6."""
import json
import os
import random
import re
import sys


def read_params():
    raw = sys.stdin.read() or os.environ.get("FAAS_PARAMS", "{}")
    return json.loads(raw or "{}")


def roll(spec):
    match = re.fullmatch(r"\s*(\d{1,3})d(\d{1,6})\s*", str(spec))
    if not match:
        raise ValueError(f'roll must look like "4d6", got {spec!r}')
    count, sides = int(match.group(1)), int(match.group(2))
    if count < 1 or sides < 1:
        raise ValueError("a roll needs at least one die with at least one side")
    return [random.randint(1, sides) for _ in range(count)]


if __name__ == "__main__":
    try:
        print(json.dumps(roll(read_params().get("roll", "1d6")), separators=(",", ":")))
    except ValueError as err:
        print(str(err), file=sys.stderr)
        sys.exit(2)

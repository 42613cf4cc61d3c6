"""A handler-mode example: keeps a counter between calls in one container."""
import random

calls = 0


def handle(params):
    global calls
    calls += 1
    if "roll" in params:
        count, sides = (int(x) for x in str(params["roll"]).split("d"))
        return [random.randint(1, sides) for _ in range(count)]
    print(f"hello called {calls} times")
    return {"hello": params.get("name", "world"), "calls": calls}

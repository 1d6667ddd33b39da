"""The loop guard: a tail that is one short cycle repeated many times stops the answer; text
that merely repeats a little, or never, does not."""

from __future__ import annotations

import random

from jarvis.engines.llama_cpp.repetition import MIN_TOKENS, RepetitionGuard


def first_stop(tokens: list[int]) -> int | None:
    guard = RepetitionGuard()
    return next((index for index, token in enumerate(tokens) if guard.add(token)), None)


def test_a_line_repeated_over_and_over_stops():
    line = [101, 102, 103, 104, 10]  # "Якоюсь!\n"
    stop = first_stop([7, 8, 9] + line * 100)
    assert stop is not None and stop < 3 + MIN_TOKENS + len(line)


def test_one_token_repeated_stops():
    assert first_stop([5] * 200) == MIN_TOKENS - 1


def test_a_long_cycle_needs_several_copies():
    cycle = list(range(1000, 1100))  # a 100-token paragraph
    assert first_stop(cycle * 3 + [1]) is None
    assert first_stop(cycle * 5) is not None


def test_varied_text_and_short_repeats_never_stop():
    rng = random.Random(7)
    assert first_stop([rng.randrange(5000) for _ in range(5000)]) is None
    assert first_stop([1, 2, 3] * 4 + [rng.randrange(5000) for _ in range(200)]) is None
    counting = [token for n in range(1, 300) for token in (n, 220)]  # "1 2 3 …": no cycle
    assert first_stop(counting) is None

"""Stop an answer that has fallen into a loop.

A small model (or any model at a low temperature) can lock into repeating the same line
until the token cap: the bundled base model once wrote one word a hundred times. The guard
watches the generated token ids: when their tail is one short cycle repeated many times
over, the answer stops and is marked with finish reason `repetition`. Legitimate text
repeats too (a table, a list of zeros), so it takes a long run: at least MIN_TOKENS tokens
and MIN_REPEATS copies of the cycle.
"""

from __future__ import annotations

MAX_PERIOD = 128  # the longest cycle (in tokens) looked for: a few lines of text
MIN_REPEATS = 4
MIN_TOKENS = 64


class RepetitionGuard:
    """Feed every generated token; `add` says when the tail has become a loop.

    For each period p it keeps how many tokens in a row have equalled the token p places
    before them; a run of r such tokens means the last p + r tokens repeat with period p.
    Constant work per token (MAX_PERIOD integer steps), no scanning of the history.
    """

    def __init__(self, *, max_period: int = MAX_PERIOD, min_repeats: int = MIN_REPEATS, min_tokens: int = MIN_TOKENS):
        self.max_period = max_period
        self.needed = [max(min_repeats * p, min_tokens) - p for p in range(max_period + 1)]
        self.runs = [0] * (max_period + 1)
        self.tokens: list[int] = []

    def add(self, token: int) -> bool:
        tokens = self.tokens
        tokens.append(token)
        count = len(tokens)
        runs, needed = self.runs, self.needed
        looping = False
        for period in range(1, min(self.max_period, count - 1) + 1):
            if tokens[-1 - period] == token:
                runs[period] += 1
                if runs[period] >= needed[period]:
                    looping = True
            else:
                runs[period] = 0
        return looping

"""Memories captured from plain statements in a chat: "remember that my cat is called Mia",
"Merk dir, dass ich Tee lieber mag", "don't forget: the wifi password is on the fridge".

`detect(text)` is a pure function: it says whether a message asks the assistant to
remember something and returns (kind, content) with the instruction stripped. The rules:

* The instruction opens the message (after a greeting or "Jarvis," and "please"/"bitte"):
  English "remember that …", "remember: …", "remember my/I'm …", "please remember …",
  "don't forget (that) …", "keep in mind that …"; German "merk dir (, dass) …",
  "merke dir: …", "merken Sie sich …", "denk daran, dass …", "vergiss nicht, dass …",
  "nicht vergessen: …", "kannst du dir merken, dass …", "behalte im Kopf, dass …".
* Questions are not instructions: "do you remember the movie?" or "remember when we …?"
  capture nothing; a polite "can you remember that …?" does. A question that follows the
  statement ("Remember that I'm vegan. What should I cook?") is left out of the memory.
* Reminiscence ("remember that time we …") and reminders ("remember to buy milk",
  "denk daran, Milch zu kaufen") are not memories: nothing is captured.
* Chat commands ("/remember …") are the command plugin's business and are skipped here.
* "I prefer / I like / I love / I hate / my favourite …", "ich mag / bevorzuge / liebe /
  lieber / Lieblings…" make a preference; everything else is a fact.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_CONTENT_CHARS = 10_000


class Capture(NamedTuple):
    kind: str  # "fact" | "preference"
    content: str


_FLAGS = re.IGNORECASE | re.VERBOSE | re.DOTALL

_LEAD = r"""
    (?:(?:hey|hi|hello|hallo|ok|okay|oh|so|also|and|und|btw|übrigens|by\s+the\s+way)\b[\s,.!:;-]*)*
    (?:jarvis\b[\s,.!:;-]*)?
"""
_ASK_EN = r"(?P<ask>(?:can|could|would|will)\s+you\s+(?:please\s+)?)"
_PLEASE_EN = r"(?P<please>(?:please|pls|plz)[\s,]+)"
_ASK_DE = r"(?P<ask>(?:kannst|könntest|würdest)\s+du\s+(?:dir\s+)?(?:bitte\s+)?)"
_PLEASE_DE = r"(?P<please>bitte[\s,]+)"
_SEP = r"\s*[:\-–—]\s*"  # "remember: …", "merk dir – …"
_THAT_EN = r"(?:\s*,?\s*that\s+|" + _SEP + r"|\s*,\s*)"
_DASS = r"(?:\s*,?\s*(?P<dass>da(?:ss|ß))\s+|" + _SEP + r")"

_EN = [
    # remember: … / remember this: …
    rf"{_LEAD}(?:{_PLEASE_EN}|{_ASK_EN})?remember(?:\s+(?:this|the\s+following))?{_SEP}(?P<body>.+)",
    # remember that … / remember, that …
    rf"{_LEAD}(?:{_PLEASE_EN}|{_ASK_EN})?remember\s*,?\s+that\s+(?P<that>.+)",
    # remember my cat is called Mia / remember I'm allergic to nuts
    rf"{_LEAD}(?:{_PLEASE_EN}|{_ASK_EN})?remember\s+(?P<body>(?:my|our|i|i'm|i'd|i've|i'll|we|we're|we've|his|her|their|mine)\b.+)",
    # please remember the wifi password is …
    rf"{_LEAD}{_PLEASE_EN}remember\s+(?P<loose>.+)",
    rf"{_LEAD}(?:{_PLEASE_EN})?(?:don't|dont|do\s+not|never)\s+forget{_THAT_EN}(?P<body>.+)",
    rf"{_LEAD}(?:{_PLEASE_EN})?(?:always\s+)?keep\s+in\s+mind{_THAT_EN}(?P<body>.+)",
]
_DE = [
    # merk dir, dass … / merke dir: … / merk dir bitte … / merkt euch … / merken Sie sich …
    rf"{_LEAD}(?:{_PLEASE_DE})?(?:merk|merke|merkt)\s+(?:dir|euch)(?:\s+bitte)?(?:{_DASS}|\s*,\s*|\s+)(?P<loose>.+)",
    rf"{_LEAD}(?:{_PLEASE_DE})?merken\s+sie\s+sich(?:\s+bitte)?(?:{_DASS}|\s*,\s*|\s+)(?P<loose>.+)",
    rf"{_LEAD}{_ASK_DE}merken{_DASS}(?P<body>.+)",
    rf"{_LEAD}(?:{_PLEASE_DE})?(?:denk|denke|denkt|denken\s+sie)(?:\s+bitte)?\s+(?:immer\s+)?daran{_DASS}(?P<body>.+)",
    rf"{_LEAD}(?:{_PLEASE_DE})?(?:vergiss|vergesst|vergessen\s+sie)(?:\s+bitte)?\s+nicht{_DASS}(?P<body>.+)",
    rf"{_LEAD}(?:{_PLEASE_DE})?nicht\s+vergessen{_SEP}(?P<body>.+)",
    rf"{_LEAD}(?:{_PLEASE_DE})?(?:behalt|behalte)(?:\s+bitte)?\s+im\s+(?:hinter)?kopf{_DASS}(?P<body>.+)",
]
_PATTERNS = [re.compile(pattern, _FLAGS) for pattern in _EN + _DE]

# "remember that time we …": a shared past, not something to store
_REMINISCENCE = re.compile(
    r"(?:time|day|night|evening|morning|weekend|summer|winter|holiday|vacation|trip|movie|film|song|"
    r"book|game|place|restaurant|party|guy|girl|man|woman|one|thing|joke)\b",
    re.IGNORECASE,
)
# what may not open a loosely introduced memory: a reminder ("to buy milk") or a question word
_REMINDER_OR_QUESTION = re.compile(
    r"(?:to|when|how|what|who|whom|where|why|whether|if|me|wie|was|wann|wo|woran|warum|wer|ob|zu|mich)\b",
    re.IGNORECASE,
)
# a memory that is only a pronoun points at context we do not have ("merk dir das")
_PRONOUN_ONLY = re.compile(r"(?:this|that|it|these|those|das|dies|dieses|es|den|die)", re.IGNORECASE)
_PREFERENCE = re.compile(
    r"""
    \b(?:i|we)\s+(?:really\s+|also\s+|much\s+|generally\s+|usually\s+|do\s+|actually\s+)?
        (?:prefer|like|love|enjoy|hate|dislike|can't\s+stand|don't\s+like|do\s+not\s+like|would\s+rather)\b
    | \b(?:i'd|we'd)\s+(?:rather|prefer)\b
    | \bfavou?rite\b
    | \b(?:ich|wir)\s+(?:\w+\s+)?(?:mag|mögen|bevorzuge|bevorzugen|liebe|lieben|hasse|hassen)\b
    | \b(?:mag|mögen|bevorzuge|bevorzugen|liebe|lieben|hasse|hassen)\s+(?:ich|wir)\b
    | \blieber\b | \bam\s+liebsten\b | \blieblings\w*
    """,
    _FLAGS,
)
_TRAILING_POLITE = re.compile(r"(?:[\s,]+(?:please|pls|bitte|thanks|thank\s+you|danke))+\s*[.!]*\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!]+(?=\s)|\n")


def classify(content: str) -> str:
    """ "preference" for likes, dislikes and favourites (English and German), else "fact"."""
    return "preference" if _PREFERENCE.search(content) else "fact"


def detect(text: str) -> Capture | None:
    """The memory a message asks to be kept, or None.

    Pure; never raises. See the module docstring for the rules.
    """
    if not isinstance(text, str):
        return None
    message = re.sub(r"[ \t\r\f\v]+", " ", text.replace("’", "'").replace("‘", "'")).strip()
    if not message or message.startswith("/"):
        return None
    for pattern in _PATTERNS:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        groups = match.groupdict()
        body = groups.get("body") or groups.get("that") or groups.get("loose") or ""
        if groups.get("that") and _REMINISCENCE.match(body):
            return None
        if groups.get("loose") and _REMINDER_OR_QUESTION.match(body):
            return None
        content = _statement(body, asked=bool(groups.get("ask")))
        if content is None:
            return None
        if groups.get("dass"):
            content = main_clause(content)
        return Capture(classify(content), content)
    return None


_PRONOUN_SUBJECT = re.compile(r"(?:ich|du|er|sie|es|wir|ihr|man)", re.IGNORECASE)
_DETERMINER = re.compile(
    r"(?:mein|meine|dein|deine|sein|seine|ihr|ihre|unser|unsere|euer|eure|der|die|das)", re.IGNORECASE
)


def main_clause(clause: str) -> str:
    """A German "dass" clause as a main clause, when its shape is plain enough to be sure:
    "ich Tee lieber mag" → "ich mag Tee lieber", "mein Büro in Raum 4 ist" → "mein Büro ist
    in Raum 4". The finite verb ends a subordinate clause and follows the subject in a main
    one; anything less regular (commas, a longer subject) is left as it was."""
    words = clause.split(" ")
    if len(words) < 3 or any(ch in clause for ch in ",;:()\n") or not words[-1].isalpha() or not words[-1].islower():
        return clause
    if _PRONOUN_SUBJECT.fullmatch(words[0]):
        subject = 1
    elif _DETERMINER.fullmatch(words[0]) and words[1][:1].isupper() and len(words) >= 4:
        subject = 2
    else:
        return clause
    return " ".join([*words[:subject], words[-1], *words[subject:-1]])


def _statement(body: str, *, asked: bool) -> str | None:
    """The statement in `body`: up to a question that follows it, without polite endings."""
    question = body.find("?")
    if question >= 0:
        ends = [m.end() for m in _SENTENCE_END.finditer(body, 0, question)]
        if ends:
            body = body[: ends[-1]]
        elif asked:  # "can you remember that I like tea?"
            body = body[:question]
        else:  # "remember when we …?" is a question, not an instruction
            return None
    body = _TRAILING_POLITE.sub("", body.strip())
    content = body.strip().strip("\"'„“”«»").strip().rstrip(".!,;:– -").strip()
    if len(re.findall(r"\w", content)) < 2 or _PRONOUN_ONLY.fullmatch(content):
        return None
    if len(content) > MAX_CONTENT_CHARS:
        return None  # a memory is a statement, not a document; the message is in the history anyway
    first_word = content.split(None, 1)[0]
    if first_word.islower():  # "my cat …" → "My cat …", but "iPhone …" stays
        content = content[0].upper() + content[1:]
    return content

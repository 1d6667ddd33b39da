"""Auto-capture from plain statements: English and German, case, punctuation, and no false
positives on questions, reminiscence or reminders."""

from __future__ import annotations

import pytest

from jarvis.memory.capture import Capture, classify, detect, main_clause


@pytest.mark.parametrize(
    "text, expected",
    [
        # English
        ("remember that my cat is called Mia", ("fact", "My cat is called Mia")),
        ("Remember that my cat is called Mia.", ("fact", "My cat is called Mia")),
        ("REMEMBER THAT MY CAT IS CALLED MIA!", ("fact", "MY CAT IS CALLED MIA")),
        ("Remember: I prefer tea over coffee.", ("preference", "I prefer tea over coffee")),
        ("remember this: the spare key is under the mat", ("fact", "The spare key is under the mat")),
        ("remember - my flight leaves at 7", ("fact", "My flight leaves at 7")),
        ("please remember the wifi password is on the fridge", ("fact", "The wifi password is on the fridge")),
        ("Please remember that I like my coffee black, thanks!", ("preference", "I like my coffee black")),
        ("remember my cat is called Mia", ("fact", "My cat is called Mia")),
        ("remember I'm allergic to peanuts", ("fact", "I'm allergic to peanuts")),
        ("don't forget that my mom's birthday is May 3rd!", ("fact", "My mom's birthday is May 3rd")),
        ("Don’t forget: the dentist is Dr. Weber", ("fact", "The dentist is Dr. Weber")),
        ("do not forget, I hate cilantro", ("preference", "I hate cilantro")),
        ("Keep in mind that I work night shifts", ("fact", "I work night shifts")),
        ("Hey Jarvis, remember that I'm vegetarian.", ("fact", "I'm vegetarian")),
        ("ok jarvis: remember that my favourite colour is green", ("preference", "My favourite colour is green")),
        ("can you remember that I like jazz?", ("preference", "I like jazz")),
        ("Could you please remember that my car is a blue Golf?", ("fact", "My car is a blue Golf")),
        ("I'd like you to remember nothing", None),
        ("remember that I'd rather take the train", ("preference", "I'd rather take the train")),
        ("Remember that iPhone 15 is mine", ("fact", "iPhone 15 is mine")),
        # a question after the statement is not part of the memory
        ("Remember that I'm vegan. What should I cook tonight?", ("fact", "I'm vegan")),
        ("Remember: I'm vegan. I also avoid honey. Any recipe ideas?", ("fact", "I'm vegan. I also avoid honey")),
        # German
        ("merk dir, dass meine Katze Mia heißt", ("fact", "Meine Katze heißt Mia")),
        ("Merk dir, dass ich Vegetarier bin.", ("fact", "Ich bin Vegetarier")),
        ("merke dir: Ich mag keinen Kaffee.", ("preference", "Ich mag keinen Kaffee")),
        ("Merke dir meine Nummer ist 0171 2345", ("fact", "Meine Nummer ist 0171 2345")),
        ("merk dir: Ich bevorzuge dunkle Themes", ("preference", "Ich bevorzuge dunkle Themes")),
        ("MERK DIR, DASS ICH IN BERLIN WOHNE", ("fact", "ICH IN BERLIN WOHNE")),
        ("Merk dir bitte, dass ich lieber Tee trinke", ("preference", "Ich trinke lieber Tee")),
        ("bitte merk dir, dass mein Büro in Raum 4 ist", ("fact", "Mein Büro ist in Raum 4")),
        ("Merken Sie sich bitte, dass unser Meeting dienstags ist", ("fact", "Unser Meeting ist dienstags")),
        ("denk daran, dass ich morgen Geburtstag habe", ("fact", "Ich habe morgen Geburtstag")),
        ("Denke daran: Der Müll wird freitags abgeholt", ("fact", "Der Müll wird freitags abgeholt")),
        ("Vergiss nicht, dass ich keine Nüsse essen darf!", ("fact", "Ich darf keine Nüsse essen")),
        ("vergiss nicht: meine Lieblingsfarbe ist Grün", ("preference", "Meine Lieblingsfarbe ist Grün")),
        ("Nicht vergessen: Oma kommt am Sonntag", ("fact", "Oma kommt am Sonntag")),
        ("Kannst du dir merken, dass ich Tee mag?", ("preference", "Ich mag Tee")),
        ("Hallo Jarvis, merk dir, dass ich Linkshänder bin.", ("fact", "Ich bin Linkshänder")),
        ("Behalte im Hinterkopf, dass ich Schicht arbeite", ("fact", "Ich arbeite Schicht")),
        (
            "merk dir, dass ich, wenn es regnet, lieber zu Hause bleibe",
            ("preference", "Ich, wenn es regnet, lieber zu Hause bleibe"),
        ),
    ],
)
def test_detects_statements_to_remember(text, expected):
    found = detect(text)
    assert (tuple(found) if found else None) == expected
    if found:
        assert isinstance(found, Capture) and found.kind in {"fact", "preference"}


@pytest.mark.parametrize(
    "text",
    [
        "do you remember the movie?",
        "Do you remember that I like tea?",
        "remember?",
        "remember that?",
        "Remember when we went to Paris?",
        "remember when we went to Paris",
        "remember that time we went to Paris",
        "Remember that movie we watched last week",
        "remember to buy milk",
        "please remember to call mom",
        "please remember me",
        "please remember this",
        "I remember that",
        "I'll remember that",
        "what do you remember about me?",
        "Can you remember things?",
        "the best way to remember names is repetition",
        "Weißt du noch, wie wir in Rom waren?",
        "Merkst du dir das?",
        "merk dir das",
        "Merk dir das!",
        "merk dir, wo ich geparkt habe",
        "Denk daran, Milch zu kaufen",
        "ich vergesse nicht, dass du mir geholfen hast",
        "Vergiss es",
        "/remember my cat is called Mia",
        "",
        "   ",
        "remember: ?",
        "remember that it",
    ],
)
def test_ignores_what_is_not_an_instruction_to_remember(text):
    assert detect(text) is None


def test_ignores_non_strings_and_overlong_statements():
    assert detect(None) is None  # type: ignore[arg-type]
    assert detect("remember that " + "x" * 20_000) is None


def test_multiline_statement_keeps_its_lines():
    found = detect("Remember:\nmy wifi is 'home'\nthe password is on the fridge")
    assert found == ("fact", "My wifi is 'home'\nthe password is on the fridge")


@pytest.mark.parametrize(
    "content, kind",
    [
        ("I prefer tea", "preference"),
        ("I really like jazz", "preference"),
        ("we love hiking", "preference"),
        ("I don't like onions", "preference"),
        ("my favorite band is Muse", "preference"),
        ("Ich mag Tee", "preference"),
        ("ich bevorzuge Zugfahren", "preference"),
        ("Tee mag ich lieber", "preference"),
        ("am liebsten esse ich Pasta", "preference"),
        ("Meine Lieblingsfarbe ist Grün", "preference"),
        ("My sister likes horses", "fact"),
        ("My cat is called Mia", "fact"),
        ("Ich wohne in Berlin", "fact"),
        ("Unlike my brother, I am tall", "fact"),
    ],
)
def test_classify(content, kind):
    assert classify(content) == kind


@pytest.mark.parametrize(
    "clause, expected",
    [
        ("ich Tee mag", "ich mag Tee"),
        ("meine Katze Mia heißt", "meine Katze heißt Mia"),
        ("ich morgen anrufen werde", "ich werde morgen anrufen"),
        ("Ich", "Ich"),
        ("meine Schwester", "meine Schwester"),
        ("ich, wenn es regnet, zu Hause bleibe", "ich, wenn es regnet, zu Hause bleibe"),
        ("Berlin ist schön", "Berlin ist schön"),  # not a subordinate clause: left alone
        ("ich wohne in Berlin", "ich wohne in Berlin"),  # ends in a noun: left alone
    ],
)
def test_german_dass_clause_to_main_clause(clause, expected):
    assert main_clause(clause) == expected

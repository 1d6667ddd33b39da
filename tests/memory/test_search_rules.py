"""How a typed query becomes a full-text query, and how hits are scored (no database)."""

from __future__ import annotations

import pytest

from jarvis.errors import InvalidInput
from jarvis.memory.search import (
    MAX_QUERY_CHARS,
    message_query,
    overlap,
    parse_query,
    prefixes,
    word_expressions,
)


@pytest.mark.parametrize("query", ["", "   ", "\n\t", None, 5])
def test_empty_or_non_text_query_is_invalid(query):
    with pytest.raises(InvalidInput):
        parse_query(query)


def test_query_length_is_bounded():
    parse_query("x" * MAX_QUERY_CHARS)
    with pytest.raises(InvalidInput, match="1000"):
        parse_query("x" * (MAX_QUERY_CHARS + 1))


def test_plain_words_drop_stop_words_in_both_languages():
    assert parse_query("What is my cat called?").terms == ("cat", "called")
    assert parse_query("Wie heißt meine Katze?").terms == ("heißt", "katze")
    assert parse_query("what is it").terms == ("what", "is", "it")  # nothing else left: keep them
    assert not parse_query("what is my cat called").syntax


@pytest.mark.parametrize("query", ['"unbalanced', "AND OR", "*", "NEAR(", "cat*", '"my cat"', "tea OR coffee", "(a"])
def test_search_syntax_is_recognised(query):
    assert parse_query(query).syntax


def test_operators_are_not_search_words():
    assert parse_query("tea OR coffee").terms == ("tea", "coffee")
    assert parse_query("AND OR").terms == ()
    assert parse_query("and or").terms == ("and", "or")  # lower case: plain words


def test_fts5_expressions_quote_every_word():
    assert word_expressions(("cat", "near", "and"), sqlite=True) == (
        ['"cat"', '"near"', '"and"'],
        '"cat" AND "near" AND "and"',
    )
    assert word_expressions(("katzen", "mi", "called"), sqlite=True, prefix=True) == (
        ['"katz"*', '"call"*'],
        '"katz"* AND "call"*',
    )
    assert word_expressions(("cat",), sqlite=True) == (['"cat"'], None)


def test_tsquery_expressions_quote_every_word():
    assert word_expressions(("cat", "or"), sqlite=False) == (["'cat'", "'or'"], "'cat' & 'or'")
    assert word_expressions(("katzen", "mi"), sqlite=False, prefix=True) == (["'katz':*"], None)


def test_prefixes_drop_short_words():
    assert prefixes(("a", "to", "cats", "cat")) == ["cat"]


def test_overlap_is_relative_to_the_shorter_side():
    assert overlap(("cat", "name"), "My cat is called Mia") == 0.5
    assert overlap(("cat",), "My cat is called Mia") == 1.0
    assert overlap(("cats",), "My cat is called Mia") == 1.0  # light stemming
    assert overlap(("katzen",), "Meine Katze heißt Mia") == 1.0
    assert overlap(("muller",), "Herr Müller") == 1.0  # diacritics
    assert overlap(("dog",), "My cat is called Mia") == 0.0
    assert overlap((), "anything") == 0.0
    long_message = message_query(
        "Can you suggest a name for my new dog? My cat is called Mia and I want something similar"
    )
    assert overlap(long_message.terms, "My cat is called Mia") == 1.0


def test_overlap_with_prefixes():
    assert overlap(("mi",), "Mia", prefix=True) == 0.0  # too short to be a prefix
    assert overlap(("berl",), "I live in Berlin", prefix=True) == 1.0


def test_a_chat_message_is_never_read_as_syntax_and_is_bounded():
    query = message_query('AND "unbalanced NEAR( ' + "word " * 10_000)
    assert not query.syntax
    assert "unbalanced" in query.terms and len(query.terms) <= 12

"""Redaction: no credential survives, in text, in structured extras, in a traceback."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from jarvis.logs.capture import CaptureHandler
from jarvis.logs.redact import MASK, Redactor, is_secret_name

API_KEY = "jv-api-Key.with+odd/chars=="
HF_TOKEN = "hf_" + "A1b2C3d4" * 4
OPENAI = "plain-openai-secret-value-42"
SECRETS = [API_KEY, HF_TOKEN, OPENAI]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([*SECRETS, None, "", "   "])


@pytest.mark.parametrize(
    "text, gone",
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Zm9vOmJhcg=="),
        ("headers={'Authorization': 'Bearer tok-123456789', 'Accept': '*/*'}", "tok-123456789"),
        ("[(b'authorization', b'Bearer raw-bytes-token')]", "raw-bytes-token"),
        ('{"authorization": "Token zzz-yyy-xxx"}', "zzz-yyy-xxx"),
        ("curl -H 'x: y' with bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("Sec-WebSocket-Protocol: chat, bearer.k3y-of-a-browser", "k3y-of-a-browser"),
        ("using hf_abcdefghijklmnopqrstuvwxyz0123 for the hub", "hf_abcdefghijklmnopqrstuvwxyz0123"),
        ("openai key sk-proj-ABCDEFGHIJKLMNOP1234_5678 failed", "sk-proj-ABCDEFGHIJKLMNOP1234_5678"),
        ("GET /v1/models?api_key=qwerty123&x=1", "qwerty123"),
        ("GET /x?token=t0k3n&api-key=k3y&access_token=acc9v", "t0k3n"),
        ("GET /x?token=t0k3n&api-key=k3y&access_token=acc9v", "k3y"),
        ("GET /x?token=t0k3n&api-key=k3y&access_token=acc9v", "acc9v"),
        ("https://user.example/file?X-Amz-Signature=abcdef0123&password=hunter2", "hunter2"),
        ('{"api_key": "json-secret", "max_tokens": 5}', "json-secret"),
        ("{'hf_token': 'dict-secret'}", "dict-secret"),
    ],
)
def test_patterns_are_masked(redactor, text, gone):
    out = redactor.text(text)
    assert gone not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=512 temperature=0.7",
        "the token budget is spent",
        "Basic arithmetic works",
        "loaded gemma3:270m in 0.4 s",
        "GET /api/logs?level=WARNING&limit=5 200 1.2 ms",
    ],
)
def test_ordinary_text_is_left_alone(redactor, text):
    assert redactor.text(text) == text


def test_configured_secrets_are_removed_wherever_they_appear(redactor):
    for secret in SECRETS:
        for text in (secret, f"x{secret}y", f"key is {secret}.", f"url?q={secret}", f"'{secret}'"):
            assert secret not in redactor.text(text)
    # as they look inside a URL too
    from urllib.parse import quote, quote_plus

    assert quote(API_KEY, safe="") not in redactor.text(f"/x?k={quote(API_KEY, safe='')}")
    assert quote_plus(API_KEY) not in redactor.text(f"/x?k={quote_plus(API_KEY)}")


def test_structured_values(redactor):
    value = {
        "Authorization": "Bearer anything",
        "X-Api-Key": "anything",
        "headers": {"cookie": "session=abc", "accept": "json"},
        "list": [f"token {HF_TOKEN}", OPENAI.encode(), 3, None, True],
        "nested": {"deeper": {"url": f"/p?api_key={API_KEY}"}},
        "max_tokens": 5,
        "obj": ValueError(f"bad {OPENAI}"),
    }
    out = redactor.value(value)
    text = json.dumps(out)
    for secret in [*SECRETS, "anything", "session=abc"]:
        assert secret not in text
    assert out["max_tokens"] == 5 and out["headers"]["accept"] == "json" and out["list"][2:] == [3, None, True]


def test_configured_secrets_come_from_every_setting(make_settings, tmp_path):
    from jarvis.logs.service import configured_secrets

    keys = tmp_path / "keys.txt"
    keys.write_text("# users\nalice: alice-key-123456\nbob:bob-key-654321\n")
    settings = make_settings(
        api_key="k-one",
        hf_token="hf-two",
        openai_api_key="oa-three",
        database_url="postgresql+asyncpg://u:db-pass-word@127.0.0.1:1/x",
        api_keys_file=keys,
    )
    assert set(configured_secrets(settings)) == {
        "k-one",
        "hf-two",
        "oa-three",
        "db-pass-word",
        "alice-key-123456",
        "bob-key-654321",
    }
    keys.write_text('{"carol": "carol-key-0000"}')
    assert "carol-key-0000" in configured_secrets(settings)


def test_secret_names():
    for name in ("Authorization", "proxy-authorization", "api_key", "X-Api-Key", "hf_token", "password", "Cookie"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "tokenizer", "path", "status", "keyboard"):
        assert not is_secret_name(name), name


def _record(logger: str, level: int, msg: str, args=(), exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord(logger, level, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_captured_rows_hold_no_secret_in_message_args_extra_or_traceback(redactor):
    handler = CaptureHandler(redactor, maxsize=100)
    try:
        raise RuntimeError(f"upstream refused token {HF_TOKEN} (key {API_KEY})")
    except RuntimeError:
        exc_info = sys.exc_info()
    records = [
        _record("jarvis.test", logging.WARNING, "calling %s with %r", (OPENAI, {"Authorization": f"Bearer {API_KEY}"})),
        _record("jarvis.test", logging.ERROR, "download failed", exc_info=exc_info),
        _record("jarvis.test", logging.INFO, "extra", http={"headers": {"authorization": API_KEY}}, key=OPENAI),
        _record("jarvis.test", logging.INFO, "bad args %d", (f"{API_KEY}",)),  # %d of a str: formatting fails
        _record("jarvis.test", logging.INFO, "stack", stack_info=f"File x, line 1\n  call({HF_TOKEN})"),
    ]
    records[-1].stack_info = f"File x, line 1\n  call({HF_TOKEN})"
    for record in records:
        handler.handle(record)
    rows = handler.take(100)
    assert len(rows) == len(records)
    text = json.dumps(rows, default=str)
    for secret in SECRETS:
        assert secret not in text
    assert "Traceback" in rows[1]["message"] and "RuntimeError" in rows[1]["message"]
    assert json.loads(rows[2]["extra"])["key"] == MASK

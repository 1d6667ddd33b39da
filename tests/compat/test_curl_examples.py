"""Ollama's documented curl examples (docs/api.md), run as written with the real `curl` against
a real server: only the host, the model and small generation options differ. `curl -d` sends
`Content-Type: application/x-www-form-urlencoded`, so these show that the Ollama- and
OpenAI-compatible routes read the body as JSON whatever its Content-Type, as Ollama and
llama-server do, and that a body which is not JSON is a 400 in each API's own error shape."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from jarvis.models.bundled import BUNDLED_NAME
from tests.models.conftest import dl_server, download_settings  # noqa: F401  (fixtures)
from tests.support.gguf_files import gguf_bytes

DOCUMENTED_HOST = "http://localhost:11434"
assert BUNDLED_NAME == "gemma3:270m", "the examples below name the bundled base model"


@pytest.fixture(scope="module", autouse=True)
def curl_binary():
    # No skip: without curl these tests would prove nothing while looking green.
    assert shutil.which("curl"), "these tests run the real curl binary: install curl"


def curl(server, command: str, *, stdin: bytes | None = None) -> tuple[int, bytes]:
    """Runs a documented command line in bash against `server`; `-s -w` only add quiet output
    and the status after the body. Returns (status, body)."""
    line = command.replace(DOCUMENTED_HOST, server.url) + " -s -w '\\n%{http_code}'"
    done = subprocess.run(["bash", "-c", line], input=stdin, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def ndjson(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


# --- Ollama's API, as its docs show it ---------------------------------------------------


def test_generate_not_streamed(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/generate -d '{
  "model": "gemma3:270m",
  "prompt": "Why is the sky blue?",
  "stream": false,
  "options": {
    "temperature": 0,
    "num_predict": 8
  }
}'""",
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["model"] == "gemma3:270m" and answer["done"] is True
    assert isinstance(answer["response"], str) and answer["response"]
    assert answer["eval_count"] > 0 and answer["prompt_eval_count"] > 0


def test_generate_streamed(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/generate -d '{
  "model": "gemma3:270m",
  "prompt": "Why is the sky blue?",
  "options": {
    "temperature": 0,
    "num_predict": 8
  }
}'""",
    )
    assert status == 200, body
    lines = ndjson(body)
    assert len(lines) >= 2 and all(line["model"] == "gemma3:270m" for line in lines)
    assert all(line["done"] is False and isinstance(line["response"], str) for line in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] > 0


def test_generate_with_only_a_model_loads_it(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/generate -d '{
  "model": "gemma3:270m"
}'""",
    )
    assert status == 200, body
    assert json.loads(body) | {"created_at": None} == {
        "model": "gemma3:270m",
        "created_at": None,
        "response": "",
        "done": True,
        "done_reason": "load",
    }


def test_chat_not_streamed(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/chat -d '{
  "model": "gemma3:270m",
  "messages": [
    {
      "role": "user",
      "content": "why is the sky blue?"
    }
  ],
  "stream": false,
  "options": {
    "temperature": 0,
    "num_predict": 8
  }
}'""",
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["done"] is True and answer["message"]["role"] == "assistant"
    assert isinstance(answer["message"]["content"], str) and answer["eval_count"] > 0


def test_chat_with_history_streamed(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/chat -d '{
  "model": "gemma3:270m",
  "messages": [
    {
      "role": "user",
      "content": "why is the sky blue?"
    },
    {
      "role": "assistant",
      "content": "due to rayleigh scattering."
    },
    {
      "role": "user",
      "content": "how is that different than mie scattering?"
    }
  ],
  "options": {
    "temperature": 0,
    "num_predict": 8
  }
}'""",
    )
    assert status == 200, body
    lines = ndjson(body)
    assert all(line["message"]["role"] == "assistant" for line in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1]["prompt_eval_count"] > 0


def test_tags_and_show(server):
    status, body = curl(server, "curl http://localhost:11434/api/tags")
    assert status == 200, body
    assert "gemma3:270m" in [m["name"] for m in json.loads(body)["models"]]

    status, body = curl(
        server,
        """curl http://localhost:11434/api/show -d '{
  "model": "gemma3:270m"
}'""",
    )
    assert status == 200, body
    shown = json.loads(body)
    assert shown["details"]["format"] == "gguf" and "model_info" in shown and "template" in shown


def test_embed_and_the_older_embeddings(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/api/embed -d '{
  "model": "gemma3:270m",
  "input": ["Why is the sky blue?", "Why is the grass green?"]
}'""",
    )
    assert status == 200, body
    vectors = json.loads(body)["embeddings"]
    assert len(vectors) == 2 and all(len(vector) == 640 for vector in vectors)

    status, body = curl(
        server,
        """curl http://localhost:11434/api/embeddings -d '{
  "model": "gemma3:270m",
  "prompt": "Here is an article about llamas..."
}'""",
    )
    assert status == 200, body
    assert len(json.loads(body)["embedding"]) == 640


def test_pull_then_delete(hub, dl_server):  # noqa: F811 (the fixture imported above)
    hub.add_hf_repo("acme/tiny-GGUF", {"tiny-Q4_K_M.gguf": gguf_bytes(payload=1 << 20)})
    status, body = curl(
        dl_server,
        """curl http://localhost:11434/api/pull -d '{
  "model": "hf.co/acme/tiny-GGUF"
}'""",
    )
    assert status == 200, body
    statuses = [line["status"] for line in ndjson(body)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"

    command = """curl -X DELETE http://localhost:11434/api/delete -d '{
  "model": "hf.co/acme/tiny-GGUF:Q4_K_M"
}'"""
    assert curl(dl_server, command)[0] == 200
    status, body = curl(dl_server, command)
    assert status == 404 and json.loads(body) == {"error": "model 'hf.co/acme/tiny-GGUF:Q4_K_M' not found"}


# --- the OpenAI-compatible API, sent the way curl sends it without -H ----------------------


def test_openai_chat_without_a_content_type(server):
    # Ollama's docs/openai.md example without its `-H "Content-Type: application/json"` line
    status, body = curl(
        server,
        """curl http://localhost:11434/v1/chat/completions \\
    -d '{
        "model": "gemma3:270m",
        "messages": [
            {
                "role": "system",
                "content": "You are a helpful assistant."
            },
            {
                "role": "user",
                "content": "Hello!"
            }
        ],
        "temperature": 0,
        "max_tokens": 8
    }'""",
    )
    assert status == 200, body
    completion = json.loads(body)
    assert completion["object"] == "chat.completion" and completion["model"] == "gemma3:270m"
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["usage"]["completion_tokens"] > 0


def test_openai_completions_and_embeddings_without_a_content_type(server):
    status, body = curl(
        server,
        """curl http://localhost:11434/v1/completions -d '{
  "model": "gemma3:270m", "prompt": "The sky is", "temperature": 0, "max_tokens": 8
}'""",
    )
    assert status == 200, body
    assert json.loads(body)["object"] == "text_completion"

    status, body = curl(
        server,
        """curl http://localhost:11434/v1/embeddings -d '{
  "model": "gemma3:270m", "input": "Why is the sky blue?"
}'""",
    )
    assert status == 200, body
    assert len(json.loads(body)["data"][0]["embedding"]) == 640


# --- bodies that are not JSON ----------------------------------------------------------------

NOT_JSON = ["-d 'hello'", "-d '{broken'", '--data-binary $\'{"model": "\\xff"}\'']
OLLAMA_POSTS = ["/api/generate", "/api/chat", "/api/show", "/api/pull", "/api/embed", "/api/embeddings"]


@pytest.mark.parametrize("data", NOT_JSON)
@pytest.mark.parametrize(
    "route",
    [f"curl http://localhost:11434{path}" for path in OLLAMA_POSTS]
    + ["curl -X DELETE http://localhost:11434/api/delete"],
)
def test_ollama_routes_answer_a_body_that_is_not_json_with_400_in_ollamas_shape(server, route, data):
    status, body = curl(server, f"{route} {data}")
    assert status == 400, body
    error = json.loads(body)
    assert list(error) == ["error"] and isinstance(error["error"], str) and error["error"]
    if "\\xff" not in data:
        assert "not valid JSON" in error["error"]


@pytest.mark.parametrize("data", NOT_JSON)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_openai_routes_answer_a_body_that_is_not_json_with_400_in_openais_shape(server, path, data):
    status, body = curl(server, f"curl http://localhost:11434{path} {data}")
    assert status == 400, body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request" and error["message"]


def test_a_body_over_the_limit_is_still_413_whatever_its_content_type(server, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"model": "gemma3:270m", "prompt": "x" * (5 << 20)}))
    for path in ("/api/generate", "/v1/completions"):
        status, body = curl(server, f"curl http://localhost:11434{path} --data-binary @{big}")
        assert status == 413 and b"payload_too_large" in body
        chunked = f"curl http://localhost:11434{path} -H 'Transfer-Encoding: chunked' --data-binary @{big}"
        status, body = curl(server, chunked)
        assert status == 413 and b"payload_too_large" in body


def test_the_native_api_still_wants_json_declared(server):
    # /api/chat/messages and the other native routes are documented as JSON: no change there
    status, body = curl(server, """curl http://localhost:11434/api/chat/messages -d '{"message": "hi"}'""")
    assert status == 422 and json.loads(body)["error"]["code"] == "invalid_request"

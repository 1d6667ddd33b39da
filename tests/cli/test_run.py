"""`jarvis run MODEL [PROMPT]` as a user runs it: the installed console script, standalone and
through a running server, one-shot, piped, and interactive on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from jarvis.models.bundled import BUNDLED_NAME
from jarvis.storage import repos
from jarvis.storage.db import Database
from tests.cli import CLI_TIMEOUT_S, JARVIS, SERVER_SIDE_MODULES, jarvis_modules, running, server_env
from tests.support.clients import LONG_ANSWER
from tests.support.postgres import free_port

SESSION_LINE = re.compile(r"stored as session (\S+)")


def jarvis_run(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    """`jarvis run …` with `stdin` piped in (empty: a pipe that is closed at once)."""
    return subprocess.run(
        [str(JARVIS), "run", *args],
        input=stdin,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def stored_sessions(data_dir: Path) -> list[tuple[str, list]]:
    """The sessions in a standalone run's SQLite database, oldest first, with their messages."""
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'jarvis.db'}")
    try:
        async with db.session() as session:
            rows, _total = await repos.list_sessions(session, user_id="default", limit=100, offset=0)
            return [(row.id, list(await repos.list_messages(session, row.id))) for row in reversed(rows)]
    finally:
        await db.close()


class Terminal:
    """A command on a pseudo-terminal: what a user at a real terminal sees and types."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "dumb"}, cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.output = ""
        self.mark = 0

    def send(self, text: str) -> None:
        self.mark = len(self.output)
        os.write(self.master, text.encode())

    def interrupt(self, *, settle: float = 0.0) -> None:
        """Ctrl-C: the terminal sends SIGINT to the program in the foreground. `settle` waits
        first, as a person would: a SIGINT that lands after readline printed the prompt but
        before it blocks in select() goes unnoticed until the next key (a CPython race no
        person is fast enough to hit)."""
        time.sleep(settle)
        self.mark = len(self.output)
        self.process.send_signal(signal.SIGINT)

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program closed the terminal
            data = b""
        self.output += data.decode(errors="replace").replace("\r\n", "\n")
        return bool(data)

    def expect(self, pattern: str, timeout: float = 120) -> re.Match:
        """Wait for `pattern` (a regex) in what was written since the last send or interrupt."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.output[self.mark :])):
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output[-3000:]}")
        self.mark += found.end()
        return found

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05) and not self.output.endswith("\n\n\n"):
            pass
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        os.close(self.master)


def standalone_env(tmp_path: Path, models_dir: Path, **values: str) -> dict[str, str]:
    """No server listens where this points: `jarvis run` starts the engine itself."""
    return server_env(tmp_path / "data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(free_port()), **values)


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir):
    """`jarvis serve` with short answers, for the tests that go through a running server."""
    root = tmp_path_factory.mktemp("cli-run")
    port = free_port()
    env = server_env(root / "data", models_dir, JARVIS_MAX_TOKENS="16")
    command = [str(JARVIS), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, port=port, env=env, cwd=root, log=root / "server.log") as server:
        yield server


def client_env(served, tmp_path: Path, models_dir: Path) -> dict[str, str]:
    """The CLI's own data dir stays empty when it talks to the server."""
    return server_env(tmp_path / "cli-data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(served.port))


def session_messages(served, session_id: str) -> list[dict]:
    response = httpx.get(f"{served.url}/api/chat/sessions/{session_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


# --- one answer ------------------------------------------------------------------------------


async def test_one_shot_and_piped_standalone(tmp_path, models_dir):
    env = standalone_env(tmp_path, models_dir, JARVIS_MAX_TOKENS="16")
    asked = jarvis_run(BUNDLED_NAME, "Name three colors.", env=env, cwd=tmp_path)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert asked.stdout.strip()
    command = jarvis_run(BUNDLED_NAME, "/calc 2*(3+4)", env=env, cwd=tmp_path)
    assert command.returncode == 0, command.stderr
    assert "14" in command.stdout
    piped = jarvis_run(BUNDLED_NAME, env=env, cwd=tmp_path, stdin="/calc 2*(3+4)\n")
    assert piped.returncode == 0, piped.stderr
    assert "14" in piped.stdout
    assert "Traceback" not in asked.stderr + command.stderr + piped.stderr

    sessions = await stored_sessions(tmp_path / "data")
    assert [[(m.role, m.status) for m in messages] for _id, messages in sessions] == [
        [("user", "complete"), ("assistant", "complete")]
    ] * 3
    (_a, first), (_b, second), (_c, third) = sessions
    assert first[0].content == "Name three colors." and first[1].content.strip() == asked.stdout.strip()
    assert second[0].content == "/calc 2*(3+4)" and "14" in second[1].content
    assert third[0].content == "/calc 2*(3+4)"


def test_one_shot_and_piped_through_a_running_server(served, tmp_path, models_dir):
    env = client_env(served, tmp_path, models_dir)
    before = httpx.get(served.url + "/api/chat/sessions", timeout=30).json()["total"]
    asked = jarvis_run(BUNDLED_NAME, "Name three colors.", env=env, cwd=tmp_path)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert asked.stdout.strip()
    piped = jarvis_run(BUNDLED_NAME, env=env, cwd=tmp_path, stdin="/calc 2*(3+4)\n")
    assert piped.returncode == 0, piped.stderr
    assert "14" in piped.stdout
    # a prompt and piped text together are one message, as `ollama run m "…" < file` is
    both = jarvis_run(BUNDLED_NAME, "/calc", env=env, cwd=tmp_path, stdin="2*(3+4)\n")
    assert "14" in both.stdout, both.stdout + both.stderr

    sessions = httpx.get(served.url + "/api/chat/sessions", params={"limit": 3}, timeout=30).json()
    assert sessions["total"] == before + 3
    newest = [session_messages(served, s["id"]) for s in sessions["sessions"]]
    assert [[m["role"] for m in messages] for messages in newest] == [["user", "assistant"]] * 3
    assert newest[-1][1]["content"].strip() == asked.stdout.strip()
    assert not (tmp_path / "cli-data" / "jarvis.db").exists()  # everything went through the server


def test_through_a_running_server_no_server_side_module_is_imported(served, tmp_path, models_dir):
    result, loaded = jarvis_modules(
        "run", BUNDLED_NAME, "/calc 6*7", env=client_env(served, tmp_path, models_dir), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "42" in result.stdout
    assert loaded & SERVER_SIDE_MODULES == set()


def test_interactive_flag_reads_piped_lines_as_one_conversation(served, tmp_path, models_dir):
    env = client_env(served, tmp_path, models_dir)
    done = jarvis_run("-i", BUNDLED_NAME, env=env, cwd=tmp_path, stdin="/calc 1+1\n/calc 2*(3+4)\nName a color.\n")
    assert done.returncode == 0, done.stdout + done.stderr  # EOF leaves
    assert "2" in done.stdout and "14" in done.stdout
    session_id = SESSION_LINE.search(done.stderr).group(1)
    messages = session_messages(served, session_id)
    assert [m["content"] for m in messages if m["role"] == "user"] == ["/calc 1+1", "/calc 2*(3+4)", "Name a color."]
    assert all(m["status"] == "complete" for m in messages)

    again = jarvis_run("--session", session_id, BUNDLED_NAME, "/calc 6*7", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "42" in again.stdout, again.stderr
    assert [m["content"] for m in session_messages(served, session_id)][-2:][0] == "/calc 6*7"
    missing = jarvis_run("--session", "no-such-session", BUNDLED_NAME, "hi", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no-such-session" in missing.stderr


def test_a_server_with_an_api_key_gets_it(tmp_path, models_dir):
    port = free_port()
    env = server_env(tmp_path / "data", models_dir, JARVIS_API_KEY="s3cret-key", JARVIS_LOAD_ON_START="false")
    command = [str(JARVIS), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, port=port, env=env, cwd=tmp_path, log=tmp_path / "server.log") as server:
        cli = server_env(tmp_path / "cli-data", models_dir, API_HOST="127.0.0.1", JARVIS_PORT=str(port))
        refused = jarvis_run(BUNDLED_NAME, "/calc 2*(3+4)", env=cli, cwd=tmp_path)
        assert refused.returncode == 1 and "API key" in refused.stderr
        answered = jarvis_run(BUNDLED_NAME, "/calc 2*(3+4)", env={**cli, "JARVIS_API_KEY": "s3cret-key"}, cwd=tmp_path)
        assert answered.returncode == 0 and "14" in answered.stdout, answered.stderr
        sessions = httpx.get(
            server.url + "/api/chat/sessions", headers={"Authorization": "Bearer s3cret-key"}, timeout=30
        )
        assert sessions.json()["total"] == 1
    assert not (tmp_path / "cli-data" / "jarvis.db").exists()


def test_unknown_model_fails_with_one_line(served, tmp_path, models_dir):
    for env in (client_env(served, tmp_path, models_dir), standalone_env(tmp_path, models_dir)):
        done = jarvis_run("no-such-model:1b", "hello", env=env, cwd=tmp_path)
        assert done.returncode == 1
        assert "no-such-model:1b" in done.stderr and "Traceback" not in done.stdout + done.stderr
        assert done.stdout == ""


def test_nothing_to_answer_fails(tmp_path, models_dir):
    done = jarvis_run(BUNDLED_NAME, env=standalone_env(tmp_path, models_dir), cwd=tmp_path, stdin="  \n")
    assert done.returncode == 1 and "nothing to answer" in done.stderr


# --- interactive, on a terminal -------------------------------------------------------------------


async def test_ctrl_c_stops_the_answer_and_the_chat_goes_on_standalone(tmp_path, models_dir):
    env = standalone_env(tmp_path, models_dir, JARVIS_MAX_TOKENS="2048")
    term = Terminal([str(JARVIS), "run", BUNDLED_NAME], env=env, cwd=tmp_path)
    try:
        term.expect(r">>> ")
        term.send("/set parameter temperature hot\n")
        term.expect(r"temperature: .*number")
        term.send("/set parameter temperature 0\n")  # greedy: the base model answers LONG_ANSWER at length
        term.expect(r"Set parameter 'temperature' to '0'")
        term.expect(r">>> ")
        term.send(LONG_ANSWER + "\n")
        term.expect(r" 399\r?\n")  # the terminal's echo of the line
        answer_from = len(term.output)
        deadline = time.monotonic() + 120
        while len(term.output[answer_from:].split()) < 8:  # streamed, token by token
            assert time.monotonic() < deadline and term.process.poll() is None, term.output
            term._read(0.1)
        stopped_at = time.monotonic()
        term.interrupt()
        term.expect(r"\(stopped\)")
        term.expect(r">>> ")
        assert time.monotonic() - stopped_at < 30
        assert term.process.poll() is None  # still chatting

        term.send("/calc 6*7\n")
        term.expect(r"42")
        term.expect(r">>> ")
        term.send("/bye\n")
        assert term.wait() == 0, term.output
    finally:
        term.close()
    session_id = SESSION_LINE.search(term.output).group(1)

    ((stored_id, messages),) = await stored_sessions(tmp_path / "data")
    assert stored_id == session_id
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "cancelled"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    cut = messages[1]
    assert cut.content and cut.completion_tokens < 2048
    assert "42" in messages[3].content


def test_multi_line_input_and_ctrl_c_twice_through_a_running_server(served, tmp_path, models_dir):
    term = Terminal([str(JARVIS), "run", BUNDLED_NAME], env=client_env(served, tmp_path, models_dir), cwd=tmp_path)
    try:
        term.expect(r">>> ")
        term.send("Tell me\\\n")
        term.expect(r"\.\.\. ")
        term.send("about the sea.\n")
        term.expect(r">>> ")
        term.send('"""\n')
        term.expect(r"\.\.\. ")
        term.send("First line\n")
        term.expect(r"\.\.\. ")
        term.send('second line"""\n')
        term.expect(r">>> ")
        term.send('"""/calc 2*(3+4)"""\n')
        term.expect(r"14")
        term.expect(r">>> ")
        term.send("/?\n")
        term.expect(r"/bye")
        term.expect(r">>> ")
        term.interrupt(settle=1.0)  # at the prompt: a hint, then the second one leaves
        term.expect(r"Ctrl-C again")
        term.expect(r">>> ")
        term.interrupt(settle=1.0)
        assert term.wait() == 0, term.output
    finally:
        term.close()
    session_id = SESSION_LINE.search(term.output).group(1)
    messages = session_messages(served, session_id)
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "Tell me\nabout the sea.",
        "First line\nsecond line",
        "/calc 2*(3+4)",
    ]
    assert [m["status"] for m in messages] == ["complete"] * 6

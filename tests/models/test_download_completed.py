"""`completed` means usable: the model is installed and its job has let go before the progress
stream says so, and an old job's `completed` is never taken for a new one's, so whatever a
client does right after it (delete, activate, chat) works. Repeated, to give a race its chances."""

from __future__ import annotations

from tests.models.test_downloads import wait_done
from tests.support.clients import client
from tests.support.downloads import assert_honest, pull, serving
from tests.support.gguf_rewrite import with_string_key

ROUNDS = 4


async def test_delete_activate_and_chat_right_after_completed(hub, download_settings, bundled_path, tmp_path):
    # the bundled model under another digest, so that every round really transfers it
    model = with_string_key(bundled_path, tmp_path / "roundtrip.gguf", "general.description", "a download round trip")
    layer = hub.add_ollama_model("roundtrip", model=model).layers["model"]
    with serving(download_settings()) as server:
        async with client(server) as http:
            for _ in range(ROUNDS):
                job = await pull(http, "roundtrip")
                events = await wait_done(http, "roundtrip")  # by the model, as a console follows it, not the job id
                assert_honest(events)
                assert events[-1]["status"] == "completed" and events[-1]["job_id"] == job["job_id"], events[-1]

                activated = await http.post("/api/models/roundtrip:latest/activate")
                assert activated.status_code == 200, activated.text
                answer = await http.post(
                    "/api/chat/messages",
                    json={"message": "Hello", "model": "roundtrip:latest", "max_tokens": 2, "temperature": 0},
                )
                assert answer.status_code == 200, answer.text
                deleted = await http.request("DELETE", "/api/models/delete", json={"model_key": "roundtrip"})
                assert deleted.status_code == 200, deleted.text
                assert "roundtrip:latest" not in [m["name"] for m in (await http.get("/api/models")).json()["models"]]
    assert hub.bytes_sent(layer.sha256) >= ROUNDS * layer.size

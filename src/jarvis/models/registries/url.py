"""A plain `https://…/*.gguf` URL: no registry, so no published digest (recorded as unverified)."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.refs import ModelRef
from jarvis.models.store import safe_file_name


def plan_url(ref: ModelRef) -> Plan:
    file = safe_file_name(unquote(PurePosixPath(urlsplit(ref.url).path).name))
    return Plan(
        name=file[: -len(".gguf")] if file.lower().endswith(".gguf") else file,
        model_key=ref.key,
        source="url",
        files=[RemoteFile(file=file, url=ref.url)],
    )

"""What a download will fetch: the files of one model and where they come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class RemoteFile:
    file: str  # the file's name at the source
    url: str  # where to GET it; may redirect (a CDN, a signed URL)
    size: int | None = None
    digest: str | None = None  # "sha256-<hex>" when the source publishes it
    # Which credentials the origin wants ("hf", "ollama" or None); the secret itself is never stored.
    auth: str | None = None


@dataclass
class Plan:
    name: str  # the installed model's name (`mistral:Q4_K_M`, `gemma3:270m`, …)
    model_key: str
    source: str  # hf | ollama | url | bundled
    repo: str | None = None
    quantization: str | None = None
    files: list[RemoteFile] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)  # the publisher's sampler settings (Ollama's params layer)

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        files = [RemoteFile(**f) for f in data.pop("files", [])]
        return cls(**data, files=files)

"""The Hugging Face Hub API as the hub speaks it: model info, file trees, `resolve` with its
302 to a signed CDN URL, gated and private repos (see tests/support/hub/__init__.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support.hub.content import (
    HTTP_DATE,
    HUB_DATE,
    LFS_THRESHOLD,
    HfEntry,
    HfRepo,
    HfRepoState,
    HubFile,
    _git_blob_oid,
    lfs_pointer,
)
from tests.support.hub.serving import bearer


def _hf_error(status: int, code: str | None, message: str) -> JSONResponse:
    headers = {"x-error-message": message}
    if code:
        headers["x-error-code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class HuggingFace:
    """The Hub's Hugging Face half, mixed into `Hub` (which holds the state it uses)."""

    def add_hf_repo(
        self,
        repo_id: str,
        files: dict[str, Path | str | bytes],
        *,
        gated: bool | str = False,
        private: bool = False,
    ) -> HfRepo:
        """Serve an HF model repo (replacing one of that id). A file is LFS when its name ends
        in `.gguf` or it is larger than 10 MiB. A `str` is a path. `gated` is False, True
        ("auto") or "manual".

        Raises ValueError for a repo id that is not `namespace/name`, FileNotFoundError for a
        missing path."""
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"an HF repo id is namespace/name, not {repo_id!r}")
        if gated not in (False, True, "auto", "manual"):
            raise ValueError(f"gated must be False, True, 'auto' or 'manual', not {gated!r}")
        entries: dict[str, HfEntry] = {}
        for name, content in files.items():
            blob = self._blob(content, names={name, name.rsplit("/", 1)[-1]})
            lfs = name.endswith(".gguf") or blob.size > LFS_THRESHOLD
            if lfs:
                pointer = lfs_pointer(blob.sha256, blob.size)
                oid = hashlib.sha1(f"blob {len(pointer)}\0".encode() + pointer).hexdigest()
                entries[name] = HfEntry(name, blob, True, oid, len(pointer))
            else:
                entries[name] = HfEntry(name, blob, False, _git_blob_oid(blob.path, blob.size), None)
        listing = "\n".join(f"{name} {entry.oid}" for name, entry in sorted(entries.items()))
        sha = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        gate = "auto" if gated is True else gated
        with self._lock:
            self._hf[repo_id] = HfRepoState(repo_id, entries, private, gate, sha)
        served = {
            name: HubFile(name, e.blob.size, e.blob.sha256, f"{self.url}/{repo_id}/resolve/main/{quote(name)}")
            for name, e in entries.items()
        }
        return HfRepo(repo_id, sha, served)

    def _hf_repo(self, request: Request, *, content: bool) -> tuple[HfRepoState | None, Response | None]:
        """The repo the request names at its revision, or the error the Hub gives (or the fault
        injected for the path); `content` asks for file bytes, which a gated repo guards."""
        if (faulted := self._path_fault(request)) is not None:
            return None, faulted
        repo_id = f"{request.path_params['ns']}/{request.path_params['repo']}"
        repo, token = self._hf.get(repo_id), bearer(request)
        authorised = self.token is not None and token == self.token
        if repo is None or (repo.private and not authorised):
            return None, _hf_error(401, "RepoNotFound", "Repository not found")
        if content and repo.gated and not authorised:
            if token is None:
                message = (
                    f"Access to model {repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in."
                )
                return None, _hf_error(401, "GatedRepo", message)
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.url}/{repo_id} to ask for access."
            )
            return None, _hf_error(403, "GatedRepo", message)
        return repo, self._revision_error(repo, request.path_params.get("revision", "main"))

    @staticmethod
    def _revision_error(repo: HfRepoState, revision: str) -> Response | None:
        if revision in ("main", repo.sha):
            return None
        return _hf_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    async def _hf_model_info(self, request: Request) -> Response:
        repo, error = self._hf_repo(request, content=False)
        if error is not None:
            return error
        blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for name, entry in sorted(repo.files.items()):
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                sibling.update(blobId=entry.oid, size=entry.blob.size)
                if entry.lfs:
                    size, pointer = entry.blob.size, entry.pointer_size
                    sibling["lfs"] = {"sha256": entry.blob.sha256, "size": size, "pointerSize": pointer}
            siblings.append(sibling)
        ns = repo.repo_id.split("/")[0]
        has_gguf = any(name.endswith(".gguf") for name in repo.files)
        return JSONResponse(
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": ns,
                "sha": repo.sha,
                "lastModified": HUB_DATE,
                "createdAt": HUB_DATE,
                "private": repo.private,
                "disabled": False,
                "gated": repo.gated,
                "downloads": 0,
                "likes": 0,
                "library_name": "gguf" if has_gguf else None,
                "tags": ["gguf"] if has_gguf else [],
                "siblings": siblings,
                "spaces": [],
                "usedStorage": sum(entry.blob.size for entry in repo.files.values()),
            }
        )

    async def _hf_tree(self, request: Request) -> Response:
        repo, error = self._hf_repo(request, content=False)
        if error is not None:
            return error
        base = request.path_params.get("path", "").strip("/")
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        prefix = f"{base}/" if base else ""
        files = {name: entry for name, entry in repo.files.items() if name.startswith(prefix)}
        if base and not files:
            return _hf_error(404, "EntryNotFound", f'{base} does not exist on "{request.path_params["revision"]}"')
        folders: set[str] = set()
        for name in files:
            parts = name[len(prefix) :].split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folders.add(prefix + "/".join(parts[:depth]))
        entries: list[dict[str, Any]] = []
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(prefix) :]:
                oid = hashlib.sha1(f"{repo.sha}:{folder}".encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        for name, entry in sorted(files.items()):
            if recursive or "/" not in name[len(prefix) :]:
                item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.blob.size, "path": name}
                if entry.lfs:
                    item["lfs"] = {"oid": entry.blob.sha256, "size": entry.blob.size, "pointerSize": entry.pointer_size}
                entries.append(item)
        return JSONResponse(entries)

    async def _hf_resolve(self, request: Request) -> Response:
        repo, error = self._hf_repo(request, content=True)
        if error is not None:
            return error
        entry = repo.files.get(request.path_params["filename"])
        if entry is None:
            return _hf_error(404, "EntryNotFound", "Entry not found")
        headers = {"x-repo-commit": repo.sha, "etag": f'"{entry.oid}"', "vary": "Origin, Accept"}
        if entry.lfs:
            location = self._sign(entry.blob, entry.name)
            headers.update(
                {
                    "location": location,
                    "x-linked-etag": f'"{entry.blob.sha256}"',
                    "x-linked-size": str(entry.blob.size),
                }
            )
            body = f"Found. Redirecting to {location}"
            return Response(body, status_code=302, headers=headers, media_type="text/plain")
        base = entry.name.rsplit("/", 1)[-1]
        headers.update(
            {
                "content-type": "text/plain; charset=utf-8",
                "content-disposition": f"inline; filename*=UTF-8''{quote(base)}; filename=\"{base}\";",
                "last-modified": HTTP_DATE,
            }
        )
        return self._serve(request, entry.blob, headers)

"""The vendored libraries are what `scripts/vendor-web.sh` makes from `web/package-lock.json`.

What can be checked offline, always: every file under `static/vendor/` is listed in its
MANIFEST.json with the sha256 it has; each listed package has the version and tarball
integrity (sha512) the lockfile pins; package.json asks for exactly the locked versions; the
script copies exactly the manifest's files. What needs the tarballs themselves: that each
vendored file is byte for byte the file in the locked tarball. npm keeps every tarball it
fetched in its content-addressed cache, under the lockfile's integrity; `scripts/install.sh
--dev` fills that cache (`npm ci` in web/) when npm is present, and then this test opens each
tarball found there, checks it against the lockfile's integrity and compares the files. When
neither npm nor its cache is there, that last step is skipped and says so.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "jarvis" / "web" / "static" / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())
LOCK = json.loads((ROOT / "web" / "package-lock.json").read_text())
PACKAGE = json.loads((ROOT / "web" / "package.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_vendored_file_is_in_the_manifest_with_its_hash():
    present = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert present == set(MANIFEST["files"])
    for name, entry in MANIFEST["files"].items():
        assert sha256(VENDOR / name) == entry["sha256"], f"{name} was changed by hand: run scripts/vendor-web.sh"


def test_the_manifest_matches_the_lockfile_and_package_json():
    locked = LOCK["packages"]
    for name, entry in MANIFEST["files"].items():
        pinned = locked[f"node_modules/{entry['package']}"]
        assert (entry["version"], entry["integrity"]) == (pinned["version"], pinned["integrity"]), name
    assert set(PACKAGE["dependencies"]) == {e["package"] for e in MANIFEST["files"].values()}
    for package, version in PACKAGE["dependencies"].items():
        assert locked[f"node_modules/{package}"]["version"] == version, (
            f"package.json and the lockfile disagree on {package}"
        )


def test_the_script_vendors_exactly_the_manifest():
    script = (ROOT / "scripts" / "vendor-web.sh").read_text()
    listed = re.findall(r'^\s*"(\S+) (\S+) (\S+)"\s*$', script, re.M)
    assert {(target, package, source) for package, source, target in listed} == {
        (name, e["package"], e["source"]) for name, e in MANIFEST["files"].items()
    }


def _cached_tarball(integrity: str) -> bytes | None:
    cache = Path(os.environ.get("npm_config_cache", Path.home() / ".npm"))  # noqa: SIM112 (npm spells it in lower case)
    algorithm, digest = integrity.split("-", 1)
    hexdigest = base64.b64decode(digest).hex()
    path = cache / "_cacache" / "content-v2" / algorithm / hexdigest[:2] / hexdigest[2:4] / hexdigest[4:]
    if not path.is_file():
        return None
    data = path.read_bytes()
    assert hashlib.new(algorithm, data).hexdigest() == hexdigest, f"npm's cached tarball {path} is damaged"
    return data


def test_the_vendored_files_are_the_locked_tarballs_files():
    tarballs = {}
    for entry in MANIFEST["files"].values():
        tarballs.setdefault(entry["integrity"], _cached_tarball(entry["integrity"]))
    missing = [i for i, data in tarballs.items() if data is None]
    if missing:
        pytest.skip(
            f"{len(missing)} locked tarballs are not in npm's cache (run scripts/install.sh --dev with npm present)"
        )
    for name, entry in MANIFEST["files"].items():
        with tarfile.open(fileobj=io.BytesIO(tarballs[entry["integrity"]]), mode="r:gz") as tar:
            member = tar.extractfile(f"package/{entry['source']}")
            assert member is not None, name
            assert hashlib.sha256(member.read()).hexdigest() == entry["sha256"], (
                f"{name} is not {entry['package']}@{entry['version']}'s {entry['source']}: run scripts/vendor-web.sh"
            )

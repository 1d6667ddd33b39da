"""Writes MANIFEST.json for the web console's vendored files (called by scripts/vendor-web.sh).

stdin: lines `package path-in-package path-in-vendor-folder`; argv: the lockfile and the vendor
folder. Each file is recorded with its package, the locked version and tarball integrity, its
path inside the tarball and its sha256, so a test can check the files against the lockfile.
"""

import hashlib
import json
import sys
from pathlib import Path

lockfile, vendor = Path(sys.argv[1]), Path(sys.argv[2])
locked = json.loads(lockfile.read_text())["packages"]
files = {}
for line in sys.stdin.read().splitlines():
    package, source, target = line.split()
    entry = locked[f"node_modules/{package}"]
    files[target] = {
        "package": package,
        "version": entry["version"],
        "integrity": entry["integrity"],
        "source": source,
        "sha256": hashlib.sha256((vendor / target).read_bytes()).hexdigest(),
    }
manifest = {"lockfile": "web/package-lock.json", "script": "scripts/vendor-web.sh", "files": files}
(vendor / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

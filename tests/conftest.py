"""Shared fixtures: the bundled models in one store for the whole run, a real PostgreSQL
cluster started by the run, and real servers on loopback for each database backend."""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from pathlib import Path

import pytest

from jarvis.config import Settings
from jarvis.models.bundled import BUNDLED_MODELS, BUNDLED_NAME, ensure_bundled
from jarvis.models.store import ModelStore
from jarvis.storage.db import Database
from tests.support.hub import Hub
from tests.support.live import LiveServer
from tests.support.postgres import PostgresCluster, find_bindir
from tests.support.redis import RedisServer, find_redis

BACKENDS = ["sqlite", "postgres"]
_databases = itertools.count()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One model store for the run: the bundled GGUFs are written out once."""
    root = tmp_path_factory.mktemp("models")
    ensure_bundled(ModelStore(root))
    return root


@pytest.fixture(scope="session")
def bundled_path(models_dir) -> Path:
    return ModelStore(models_dir).model_path(BUNDLED_NAME)


@pytest.fixture
def hub(tmp_path):
    """A model hub on loopback (HuggingFace API, OCI registry, plain files; see tests/support/hub.py)."""
    hub = Hub(tmp_path / "hub").start()
    yield hub
    hub.stop()


def fresh_store(root: Path, shared: Path) -> Path:
    """A new model store holding the bundled models as hard links (no 740 MB copy)."""
    store = ModelStore(root)
    source = ModelStore(shared)
    for name in BUNDLED_MODELS:
        manifest = source.get(name)
        os.link(source.blob_path(manifest.digest), store.blob_path(manifest.digest))
        store.save(manifest)
    return root


@pytest.fixture(scope="session")
def postgres():
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found: the PostgreSQL half of the storage and API tests is SKIPPED"
        warnings.warn(message, stacklevel=2)
        print(f"\n!!! {message} !!!", file=sys.stderr)
        pytest.skip(message)
    cluster = PostgresCluster.start(bindir)
    yield cluster
    cluster.stop()


@pytest.fixture
async def pg_database(postgres):
    """A migrated database of the test's own on the run's PostgreSQL."""
    db = Database(postgres.new_database("jarvis_pg"))
    await db.migrate()
    yield db
    await db.close()


def _redis_server(root: Path) -> RedisServer:
    if find_redis() is None:
        message = "redis-server not found (scripts/install.sh --dev installs it): the Redis tests are SKIPPED"
        warnings.warn(message, stacklevel=2)
        print(f"\n!!! {message} !!!", file=sys.stderr)
        pytest.skip(message)
    return RedisServer(root).start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on loopback for the run."""
    server = _redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path):
    """A redis-server of the test's own (one it may stop and start again)."""
    server = _redis_server(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def make_settings(tmp_path, models_dir, request):
    """Settings on a fresh data dir; `backend="postgres"` puts the database in the test cluster."""

    def make(backend: str = "sqlite", **overrides) -> Settings:
        values = {
            "data_dir": tmp_path / f"data-{next(_databases)}",
            "models_path": models_dir,
            "log_level": "WARNING",
            # The small base model, not the bundled default: the tests' speed and greedy answers.
            "default_model": BUNDLED_NAME,
        }
        if backend == "postgres":
            cluster = request.getfixturevalue("postgres")
            values["database_url"] = cluster.new_database("jarvis")
        values.update(overrides)
        return Settings.build(env_file=None, **values)

    return make


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory, models_dir):
    """A real server on loopback for each database backend, shared by the tests of the run."""
    values = {
        "data_dir": tmp_path_factory.mktemp(f"server-{request.param}"),
        "models_path": models_dir,
        "default_model": BUNDLED_NAME,
    }  # the small base model, as make_settings
    if request.param == "postgres":
        cluster = request.getfixturevalue("postgres")
        values["database_url"] = cluster.create_database(f"jarvis_server_{os.getpid()}")
    live = LiveServer(Settings.build(env_file=None, log_level="WARNING", **values)).start()
    yield live
    live.stop()

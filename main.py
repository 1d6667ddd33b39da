"""Seed compatibility: `python main.py` and `uvicorn main:app --port 5050` from the repo root."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # works before `pip install -e .` too

from jarvis.app import create_app  # noqa: E402

app = create_app()

if __name__ == "__main__":
    import uvicorn

    from jarvis.api.security import check_bind

    settings = app.state.settings
    check_bind(settings, settings.host)
    # The app object itself, not "main:app": importing this file a second time would build a second app.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())

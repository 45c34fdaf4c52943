"""Run the app under uvicorn: one process, or several workers each loading the model once."""

from __future__ import annotations

import os
import tempfile

from digitread.serve.settings import ServeSettings


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve until interrupted. The reader is loaded here first, so a bad model folder fails at once with
    one line rather than in every worker."""
    import uvicorn

    from digitread.serve.app import create_app, load_reader

    reader = load_reader(settings)
    if workers == 1:
        uvicorn.run(create_app(reader=reader, settings=settings), host=host, port=port, log_level="info")
        return
    del reader  # each worker process loads its own copy at start-up
    # Workers are separate processes: the settings reach them through the environment, and their
    # metrics through files in one folder that /metrics adds up.
    os.environ.update(settings.to_env())
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="digitread-metrics-")
    uvicorn.run(
        "digitread.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )

"""The HTTP service and web page (``digitread serve``). Needs the ``serve`` extra: FastAPI, uvicorn and friends."""

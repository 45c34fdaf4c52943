"""create_app: the HTTP service over one DigitReader, loaded once when the app starts.

Handlers are ``async`` only to read request bodies under the limits (``limits.py``); decoding and
reading run in worker threads behind a capacity limiter, so the event loop keeps answering (health
checks, metrics, queued uploads) while the CPU reads, and at most ``inference_threads`` images are
decoded at once however many clients are waiting.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import anyio
import numpy as np
import torch
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from digitread import __version__
from digitread.errors import ImageError
from digitread.feedback.store import FeedbackStore
from digitread.inference.reader import DigitReader
from digitread.inference.results import Reading
from digitread.serve import schemas
from digitread.serve.errors import ApiError, install_error_handlers
from digitread.serve.limits import BodyLimit, decode_base64, decode_gray, open_image
from digitread.serve.metrics import MetricsMiddleware, ServiceMetrics
from digitread.serve.settings import ServeSettings

log = logging.getLogger("digitread.serve")
STATIC = resources.files("digitread") / "serve" / "static"
ERRORS = {
    status: {"model": schemas.ErrorOut, "description": description}
    for status, description in {
        413: "request, image file, pixels or batch over a limit",
        415: "not multipart or JSON, or not an image format served here",
        422: "corrupt image, malformed JSON or base64, invalid fields",
    }.items()
}


@dataclass
class Upload:
    """One image as received: its bytes and how to name it in messages and readings."""

    data: bytes
    name: str | None
    what: str  # 'file', 'images[2]': where in the request it came from


def load_reader(settings: ServeSettings) -> DigitReader:
    """The reader a server process uses; sets this process's PyTorch threads (``settings.torch_threads``)
    first, as ONNX Runtime sessions take their thread count from it when they are made."""
    torch.set_num_threads(settings.torch_threads)
    return DigitReader.from_pretrained(
        settings.model,
        sequence_path=settings.sequence_model,
        mode=settings.mode,
        min_confidence=settings.min_confidence,
        backend=settings.backend,
    )


def _body(*models: type[BaseModel], files: dict[str, str]) -> dict:
    """An OpenAPI requestBody offering JSON (one of ``models``) or a multipart form with ``files``."""
    json_schema = [m.model_json_schema() for m in models]
    properties = {name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema[0] if len(json_schema) == 1 else {"oneOf": json_schema}},
                "multipart/form-data": {"schema": {"type": "object", "properties": properties}},
            },
        }
    }


def create_app(
    reader: DigitReader | None = None,
    settings: ServeSettings | None = None,
    store: FeedbackStore | None = None,
) -> FastAPI:
    """The service. ``reader`` is loaded from ``settings`` at start-up when not given (tests pass one in).

    >>> app = create_app(settings=ServeSettings(mode="segment"))  # doctest: +SKIP
    >>> uvicorn.run(app)  # doctest: +SKIP
    """
    settings = settings or ServeSettings()
    metrics = ServiceMetrics()
    store = store or FeedbackStore(settings.feedback_db)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.reader is None:
            # On the event loop's own thread, before any request: PyTorch's thread setting belongs here.
            app.state.reader = load_reader(settings)
        log.info("digitread %s serving in %s mode", __version__, app.state.reader.mode)
        yield
        store.close()

    app = FastAPI(
        docs_url=None,  # served below with Swagger UI from the package instead of a CDN
        redoc_url=None,
        title="digitread",
        version=__version__,
        description='Read handwritten numbers from images. Errors answer as `{"error": code, "detail": text}`.',
        lifespan=lifespan,
    )
    app.state.reader = reader
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = store
    limiter = anyio.CapacityLimiter(settings.inference_threads)

    def count_error(code: str) -> None:
        metrics.errors.labels(code).inc()

    install_error_handlers(app, count_error)

    def current_reader() -> DigitReader:
        return app.state.reader

    async def in_thread(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    # ---- turning a request into images ----

    async def json_payload(request: Request, model: type[BaseModel]) -> BaseModel:
        body = await request.body()
        try:
            return model.model_validate_json(body)
        except ValidationError as e:
            if any(err.get("type") == "json_invalid" for err in e.errors()):
                raise ApiError(422, "malformed_json", "the request body is not valid JSON") from None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err.get('loc', ())) or 'body'}: {err.get('msg')}" for err in e.errors()[:5]
            )
            raise ApiError(422, "invalid_request", problems) from None

    async def form(request: Request):
        try:
            # Files beyond the batch limit are counted and refused with 413 below, not by the parser (400).
            return await request.form(max_files=10_000, max_fields=100)
        except StarletteHTTPException as e:
            raise ApiError(422, "malformed_multipart", f"the multipart form could not be parsed: {e.detail}") from None

    def kind(request: Request) -> str:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            return "multipart"
        if content_type == "application/json" or content_type.endswith("+json"):
            return "json"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the image as multipart/form-data or application/json with base64, not {content_type or 'nothing'}",
        )

    async def uploads_from_form(data, field: str) -> list[Upload]:
        files = [v for k, v in data.multi_items() if k == field and isinstance(v, UploadFile)]
        out = []
        for i, f in enumerate(files):
            what = f"{field}[{i}]" if len(files) > 1 else field
            out.append(Upload(await f.read(settings.max_image_bytes + 1), f.filename, what))
        await data.close()  # the parser spools big parts to temporary files: remove them now
        return out

    def check_batch(count: int) -> None:
        if count == 0:
            raise ApiError(422, "no_image", "the request holds no image")
        if count > settings.max_batch:
            limit = settings.max_batch
            raise ApiError(413, "too_many_images", f"{count} images is over the limit of {limit} a request")

    async def one_upload(request: Request, model: type[schemas.ImageIn] = schemas.ImageIn) -> tuple[Upload, dict]:
        """The single image of /v1/read, /v1/classify and /v1/feedback, and the other fields sent with it."""
        if kind(request) == "json":
            payload = await json_payload(request, model)
            data = decode_base64(payload.image, "image", settings)
            return Upload(data, payload.name, "image"), payload.model_dump(exclude={"image"})
        fields = await form(request)
        uploads = await uploads_from_form(fields, "file")
        if len(uploads) != 1:
            code = "no_image" if not uploads else "one_image_expected"
            raise ApiError(422, code, "send exactly one image file, as field 'file'")
        others = {k: v for k, v in fields.multi_items() if isinstance(v, str)}
        return uploads[0], others

    # ---- the work done in threads ----

    def read_uploads(uploads: list[Upload]) -> list[tuple[Reading, int, int]]:
        images = [open_image(u.data, u.what, settings) for u in uploads]  # every header checked first
        grays = [decode_gray(image, u.what) for image, u in zip(images, uploads, strict=True)]
        readings = current_reader().read_many(grays, [u.name for u in uploads])
        metrics.observe_readings(readings)
        return [(r, g.shape[1], g.shape[0]) for r, g in zip(readings, grays, strict=True)]

    def reading_out(result: tuple[Reading, int, int]) -> schemas.ReadingOut:
        reading, width, height = result
        return schemas.ReadingOut.model_validate({**reading.to_dict(), "width": width, "height": height})

    # ---- routes ----

    @app.post(
        "/v1/read",
        response_model=schemas.ReadingOut,
        responses=ERRORS,
        openapi_extra=_body(schemas.ImageIn, files={"file": "the image file"}),
        summary="Read the number in one image",
    )
    async def read(request: Request) -> schemas.ReadingOut:
        upload, _ = await one_upload(request)
        (result,) = await in_thread(read_uploads, [upload])
        return reading_out(result)

    @app.post(
        "/v1/read/batch",
        response_model=schemas.BatchOut,
        responses=ERRORS,
        openapi_extra=_body(schemas.BatchIn, files={"files": "the image files; repeat the field for each"}),
        summary="Read several images in one request",
    )
    async def read_batch(request: Request) -> schemas.BatchOut:
        if kind(request) == "json":
            payload = await json_payload(request, schemas.BatchIn)
            check_batch(len(payload.images))
            uploads = [
                Upload(decode_base64(item.image, f"images[{i}]", settings), item.name, f"images[{i}]")
                for i, item in enumerate(payload.images)
            ]
        else:
            uploads = await uploads_from_form(await form(request), "files")
            check_batch(len(uploads))
        results = await in_thread(read_uploads, uploads)
        return schemas.BatchOut(readings=[reading_out(r) for r in results])

    @app.post(
        "/v1/classify",
        response_model=schemas.ClassifyOut,
        responses=ERRORS,
        openapi_extra=_body(schemas.ImageIn, schemas.PixelsIn, files={"file": "an image of one digit"}),
        summary="Classify one digit: ten probabilities",
    )
    async def classify(request: Request) -> schemas.ClassifyOut:
        classifier = current_reader().classifier
        if kind(request) == "json":
            body = await request.body()
            try:
                wants_pixels = "pixels" in json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
                raise ApiError(422, "malformed_json", "the request body is not valid JSON") from None
            if wants_pixels:
                payload = await json_payload(request, schemas.PixelsIn)
                field = np.asarray(payload.pixels, dtype=np.float32).round().astype(np.uint8)
                probs = (await in_thread(classifier.probabilities, field[None]))[0]
                return _classified(probs)
        upload, _ = await one_upload(request)

        def work() -> np.ndarray:
            gray = decode_gray(open_image(upload.data, upload.what, settings), upload.what)
            try:
                return classifier.probabilities(classifier.prepare(gray)[None])[0]
            except ImageError as e:
                raise ApiError(422, "no_digit", f"{upload.what}: {e}") from None

        return _classified(await in_thread(work))

    @app.post(
        "/v1/feedback",
        response_model=schemas.FeedbackOut,
        status_code=201,
        responses=ERRORS,
        openapi_extra=_body(
            schemas.FeedbackIn, files={"file": "the image that was read wrong; send field 'number' with it"}
        ),
        summary="Store an image with the number it really shows",
    )
    async def feedback(request: Request) -> schemas.FeedbackOut:
        upload, fields = await one_upload(request, schemas.FeedbackIn)
        try:  # multipart fields are plain strings; JSON was validated already
            number = schemas.FeedbackIn.model_validate({"image": "", "number": fields.get("number", "")}).number
        except ValidationError:
            raise ApiError(
                422, "invalid_number", "field 'number' must be the number the image shows, e.g. 1250 or -12.5"
            ) from None
        name = fields.get("name") or upload.name

        def work() -> tuple[int, str]:
            image = open_image(upload.data, upload.what, settings)
            gray = decode_gray(image, upload.what)
            reading = current_reader().read(gray, name)
            # The service's own reading is stored, so the export cuts digits with boxes it can trust.
            feedback_id = store.add(upload.data, image.format or "", number, reading.text, reading.to_dict(), name)
            return feedback_id, reading.text

        feedback_id, read_text = await in_thread(work)
        metrics.feedback.inc()
        return schemas.FeedbackOut(id=feedback_id, number=number, read=read_text)

    @app.get("/v1/model", response_model=schemas.ModelOut, summary="The models served, their metrics and limits")
    def model_info() -> schemas.ModelOut:
        r = current_reader()
        return schemas.ModelOut(
            mode=r.mode,
            digit_model=_model_card(r.classifier.config),
            sequence_model=_sequence_card(r.sequence) if r.sequence is not None else None,
            limits={
                "max_request_bytes": settings.max_request_bytes,
                "max_image_bytes": settings.max_image_bytes,
                "max_pixels": settings.max_pixels,
                "max_batch": settings.max_batch,
                "min_confidence": settings.min_confidence,
            },
            runtime={
                "inference_threads": settings.inference_threads,
                "torch_threads": torch.get_num_threads(),
                "backend": settings.backend,  # as asked; what each model runs on, below
                "digit_model_backend": r.classifier.backend.name,
                "sequence_model_backend": _backend_names(r.sequence.backends) if r.sequence is not None else None,
            },
        )

    @app.get("/healthz", response_model=schemas.Health, summary="Liveness: the model is loaded")
    def healthz() -> schemas.Health:
        return schemas.Health(status="ok", version=__version__)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="digitread API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    # The last added runs first: metrics see every answer, the body limit's refusals included.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, on_refuse=count_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def _classified(probs: np.ndarray) -> schemas.ClassifyOut:
    digit = int(np.argmax(probs))
    return schemas.ClassifyOut(
        digit=digit, confidence=float(probs[digit]), probabilities=[round(float(p), 6) for p in probs]
    )


def _model_card(config: dict) -> dict:
    """What a client may want to know of a model folder's config, without its training recipe."""
    keys = ("arch", "task", "model_args", "metrics", "calibration", "versions", "weights_sha256")
    return {k: config[k] for k in keys if k in config}


def _sequence_card(sequence) -> dict:
    """A single sequence model's card, or an ensemble's: the task and each member's card."""
    cards = [_model_card(getattr(m, "config", {})) for m in sequence.models]
    return cards[0] if len(cards) == 1 else {"task": "strings", "ensemble": True, "members": cards}


def _backend_names(backends: list) -> str:
    """``onnx``; ``onnx/torch`` for an ensemble where ``auto`` had to leave a member on PyTorch."""
    return "/".join(dict.fromkeys(b.name for b in backends))


def app_from_env() -> FastAPI:
    """The app a uvicorn worker builds (``uvicorn --factory digitread.serve.app:app_from_env``): settings
    from DIGITREAD_* variables, the reader loaded at start-up."""
    return create_app(settings=ServeSettings.from_env())

"""Per-worker warm-up (encoders, Milvus client, loaded collections) and the checks /readyz reports."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from pagelens.embed import image_encoder, text_encoder
from pagelens.errors import StoreUnavailable
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.store import VectorStore, milvus_client
from query_api.errors import ApiError

log = logging.getLogger(__name__)
STORE_CHECK_TIMEOUT_S = 3.0  # a readiness probe must answer even when Milvus hangs
MODEL_LOAD_ERRORS = (OSError, ValueError, RuntimeError, ImportError)


class Warmup:
    """Loads the encoders once per worker process: in the background at start, or by the first request needing them.

    Each gunicorn worker builds its own app (the factory runs after the fork; do not use --preload, torch and
    threads do not survive a fork), so each worker loads the models exactly once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.error = ""
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._warm_in_background, name="pagelens-warmup", daemon=True).start()

    def ensure(self) -> None:
        """Return once the models are loaded; 503 if they cannot be (the next request tries again)."""
        if self.ready.is_set():
            return
        with self._lock:
            if self.ready.is_set():
                return
            try:
                self._load_models()
            except MODEL_LOAD_ERRORS as exc:
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                raise ApiError(503, "models_unavailable", f"the encoders could not be loaded ({self.error})",
                               {"Retry-After": "30"}) from exc
            self.error = ""
            self.ready.set()
        self._load_collections()

    def _warm_in_background(self) -> None:
        try:
            self.ensure()
        except ApiError as exc:
            log.error("Warm-up failed: %s", exc.message)

    def _load_models(self) -> None:
        text_encoder(self.settings).encode(["warm-up"])  # the first forward pass initialises kernels
        clip = image_encoder(self.settings)
        if clip is not None:
            clip.encode_texts(["warm-up"])

    def _load_collections(self) -> None:
        """Open the Milvus client and load every indexed namespace now, so the first query does not pay for it."""
        from pymilvus.exceptions import MilvusException

        try:
            for namespace in Registry(self.settings.registry_url).indexed_namespaces():
                store = VectorStore(self.settings, namespace)
                if store.exists():
                    store.ensure_loaded()
        except (StoreUnavailable, MilvusException) as exc:
            log.warning("Milvus not ready yet (queries will retry): %s", exc)


Visible = Callable[[str], bool]  # which namespaces the caller may see named


def readiness(settings: Settings, warmup: Warmup, visible: Visible | None = None) -> dict[str, dict[str, Any]]:
    """{check: {"ok": bool, "detail": str}} for models, registry, milvus and collections; details name only
    the namespaces `visible` allows (None: all). A collection found released is loaded again here, so
    readiness recovers on its own once a store that failed at start-up answers."""
    if warmup.ready.is_set():
        models = {"ok": True, "detail": "text encoder" + (" and CLIP" if settings.clip_model else "") + " loaded"}
    else:
        models = {"ok": False, "detail": warmup.error or "loading"}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pagelens-readyz")
    try:
        store = pool.submit(store_checks, settings, visible or (lambda _: True)).result(timeout=STORE_CHECK_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        store = {"milvus": {"ok": False, "detail": f"no answer from {settings.milvus_uri} within "
                                                  f"{STORE_CHECK_TIMEOUT_S:g} s"}}
    finally:
        pool.shutdown(wait=False)
    return {"models": models, **store}


PUBLIC_DETAIL = {"registry": ("reachable", "unreachable"), "milvus": ("reachable", "unreachable"),
                 "collections": ("every indexed namespace is loaded", "not every indexed namespace is loaded")}


def public_checks(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The checks as anyone may see them: pass or fail and the stage, never a namespace, a URI, a path or an
    exception's text."""
    public = {}
    for name, check in checks.items():
        if name == "models":
            detail = check["detail"] if check["ok"] or check["detail"] == "loading" else "failed to load"
        elif name == "collections" and check["detail"].startswith(NO_INDEX):
            detail = NO_INDEX
        else:
            detail = PUBLIC_DETAIL.get(name, ("ok", "failed"))[0 if check["ok"] else 1]
        public[name] = {"ok": check["ok"], "detail": detail}
    return public


NO_INDEX = "no namespace has an index yet"


def store_checks(settings: Settings, visible: Visible) -> dict[str, dict[str, Any]]:
    from pymilvus.exceptions import MilvusException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        namespaces = Registry(settings.registry_url).indexed_namespaces()
    except SQLAlchemyError as exc:
        return {"registry": {"ok": False, "detail": f"registry unreachable: {type(exc).__name__}"}}
    shown = [ns for ns in namespaces if visible(ns)]
    registry = {"ok": True, "detail": f"{len(shown)} namespace(s) with indexed documents"}
    try:
        stores = [VectorStore(settings, ns) for ns in namespaces]
        if not stores:
            milvus_client(settings).list_collections()  # any round trip proves Milvus answers
        problems = {store.namespace: p for store in stores if (p := _collection_problem(store))}
    except (StoreUnavailable, MilvusException) as exc:
        return {"registry": registry, "milvus": {"ok": False, "detail": str(exc)[:300]}}
    milvus = {"ok": True, "detail": f"reachable at {settings.milvus_uri}"}
    if not namespaces:
        collections = {"ok": False, "detail": f"{NO_INDEX}: run `pagelens ingest PATH --namespace NS`"}
    else:
        named = [p for ns, p in problems.items() if visible(ns)]
        hidden = len(problems) - len(named)
        detail = "; ".join(named + ([f"{hidden} other namespace(s) not loaded"] if hidden else []))
        collections = {"ok": not problems, "detail": detail or f"loaded: {', '.join(shown) or '-'}"}
    return {"registry": registry, "milvus": milvus, "collections": collections}


def _collection_problem(store: VectorStore) -> str:
    if not store.exists():
        return f"'{store.namespace}' has indexed documents in the registry but no collection in Milvus"
    state = store.load_state()
    if "Loaded" not in state and "Loading" not in state:
        store.ensure_loaded(recheck=True)  # released (a store that came back, restarted): load it again
        state = store.load_state()
    return "" if "Loaded" in state else f"'{store.namespace}' is not loaded ({state or 'unknown state'})"

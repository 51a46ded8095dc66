"""`Annotated` dependencies: the settings, the database engine / session, the chain, the relayer, the
content store and the inference service, from app state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.chain import Chain
from backend.api.relay import Relayer
from backend.api.services.inference import Inference
from backend.api.settings import ApiSettings
from cairn.core.content import ContentStore

T = TypeVar("T")


def _state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning `app.state.<name>` (set in the app's lifespan), typed as `kind`."""

    async def dependency(request: Request) -> T:  # async: no worker-thread round trip for a getattr
        value: T = getattr(request.app.state, name)
        return value

    dependency.__name__ = f"get_{name}"
    return dependency


get_settings = _state("settings", ApiSettings)
get_engine = _state("engine", Engine)
get_chain = _state("chain", Chain)
get_relayer = _state("relayer", Relayer)
get_content_store = _state("content_store", ContentStore)
get_inference = _state("inference", Inference)


async def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> AsyncIterator[Session]:
    """One session per request. Async so that FastAPI opens and closes it on the event loop: a sync
    generator's teardown needs a worker thread, and under load every worker thread can be waiting for a
    pooled connection that only such a teardown would return (a deadlock, then pool timeouts)."""
    with Session(engine) as session:  # no connection until first use; closing returns it to the pool
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
ChainDep = Annotated[Chain, Depends(get_chain)]
RelayerDep = Annotated[Relayer, Depends(get_relayer)]
ContentStoreDep = Annotated[ContentStore, Depends(get_content_store)]
InferenceDep = Annotated[Inference, Depends(get_inference)]

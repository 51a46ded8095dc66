"""`Annotated` dependencies: the settings, the database engine / session and the chain, from app state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.chain import Chain
from backend.api.relay import Relayer
from backend.api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def get_chain(request: Request) -> Chain:
    chain: Chain = request.app.state.chain
    return chain


def get_relayer(request: Request) -> Relayer:
    relayer: Relayer = request.app.state.relayer
    return relayer


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
ChainDep = Annotated[Chain, Depends(get_chain)]
RelayerDep = Annotated[Relayer, Depends(get_relayer)]

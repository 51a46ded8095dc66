"""Start-up checks shared by `cairn up`, `cairn dev`, the indexer and the API.

Each check either returns what it learned or raises a ConfigError subclass whose message is one line naming
what is wrong (which URL, which chain id, which file), never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from cairn.core.db import make_engine
from cairn.core.deployment import Deployment, load_deployment
from cairn.core.errors import ChainUnreachableError

RPC_TIMEOUT_S = 5.0


def rpc_chain_id(url: str, timeout: float = RPC_TIMEOUT_S) -> int:
    """Ask `url` for its chain id; raise ChainUnreachableError with the reason if it does not answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ChainUnreachableError(f"RPC {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChainUnreachableError(f"RPC {url} is unreachable: {reason}") from None
    except json.JSONDecodeError:
        raise ChainUnreachableError(f"RPC {url} did not answer JSON-RPC") from None
    if not isinstance(reply, dict) or "result" not in reply:
        raise ChainUnreachableError(
            f"RPC {url} refused eth_chainId: {reply.get('error') if isinstance(reply, dict) else reply}"
        )
    return int(reply["result"], 16)


def first_reachable_chain_id(urls: list[str]) -> tuple[str, int]:
    """The first RPC URL that answers, and its chain id; the error names every URL tried."""
    errors: list[str] = []
    for url in urls:
        try:
            return url, rpc_chain_id(url)
        except ChainUnreachableError as exc:
            errors.append(exc.message)
    raise ChainUnreachableError("; ".join(errors) if errors else "no RPC URL configured (CAIRN_RPC_URLS)")


def check_stack(rpc_urls: list[str], database_url: str, deployment_file: Path) -> tuple[Deployment, int]:
    """Deployment file readable, RPC reachable and on the deployment's chain, database reachable."""
    deployment = load_deployment(deployment_file)
    url, chain_id = first_reachable_chain_id(rpc_urls)
    deployment.require_chain(chain_id, url)
    make_engine(database_url).dispose()
    return deployment, chain_id

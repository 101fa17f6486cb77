"""The ceiling the API benchmark compares with: a bare Litestar app answering a small JSON
document, served exactly as the services are (``services.kit.serve.server_options``, no proxy
trusted). ``python -m bench.bare PORT``."""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get


@get("/")
async def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([hello], logging_config=None)


def main() -> None:
    from services.kit.serve import server_options

    port = int(sys.argv[1])
    uvicorn.run(
        app, **server_options("127.0.0.1", port), proxy_headers=True, forwarded_allow_ips=[]
    )


if __name__ == "__main__":
    main()

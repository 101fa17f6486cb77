"""The request class every service uses: request bodies are decoded here, and whatever bytes a
client sends, a body that cannot be read is the client's error (4xx), never the server's."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException, SerializationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE


def is_json_media_type(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class ServiceRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        media_type = self.content_type[0].lower()
        # No Content-Type is taken as JSON (what curl and most clients mean); a declared other
        # type is refused, not guessed at: e.g. a cross-site form post sends text/plain.
        if media_type and not is_json_media_type(media_type):
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=f"The request body must be application/json, not {media_type!r}.",
            )
        try:
            return await super().json()
        except RecursionError as exc:
            # msgspec decodes nested arrays and objects recursively and raises RecursionError
            # at the interpreter's limit (about 900 levels in a handler): not a server fault.
            raise SerializationException("JSON nested too deeply") from exc
        except UnicodeDecodeError as exc:
            # msgspec raises this, not a DecodeError, for bytes in a string that are not UTF-8.
            raise SerializationException(f"not UTF-8 at byte {exc.start}") from exc

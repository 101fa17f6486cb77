"""Request and response bodies of the auth service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# Whitespace spelled out: ``\s`` means other characters to Python's re (which checks) than to
# JSON Schema's ECMA-262 regexes (which clients read); here a character is whitespace to both.
SPACE = r"[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
WORD = r"[^@\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+"
EMAIL_PATTERN = rf"^{SPACE}*{WORD}@{WORD}\.{WORD}{SPACE}*$"
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="An e-mail address; compared case-insensitively.",
    ),
]
Password = Annotated[str, Meta(min_length=8, max_length=128)]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Role = Literal["customer", "admin"]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name | None = None


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, Meta(min_length=1, max_length=128)]


class User(msgspec.Struct, rename="camel"):
    id: str
    email: str
    role: Role
    created_at: datetime
    name: str | None = None


class Token(msgspec.Struct, rename="camel"):
    access_token: str
    expires_in: int
    user: User
    token_type: str = "Bearer"


class TokenCheck(msgspec.Struct, rename="camel"):
    valid: bool
    user: User
    expires_at: int

"""HTTP routes of the auth service: the clean API, each handler also answering the seed documents'
routes that behave the same (``with_seed_paths``)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Router, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from services.auth.schemas import SignIn, Token, TokenCheck, User, UserCreate
from services.auth.service import AuthService
from services.kit.app import from_state
from services.kit.openapi import problems, with_seed_paths
from services.kit.security import DELETION_CHECKED_BY_HANDLER
from services.kit.tokens import Principal


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class AuthController(Controller):
    path = "/api"
    tags = ["auth"]

    @post(
        **with_seed_paths(
            "register",
            "/v1/auth/register",
            seedRegister="/auth/register",
            seedCreateUser="/user",
        ),
        opt=problems(409),
        status_code=HTTP_201_CREATED,
    )
    async def register(
        self, data: JSONBody[UserCreate], auth_service: NamedDependency[AuthService]
    ) -> User:
        """Create a customer account."""
        return await auth_service.register(data)

    @post(
        **with_seed_paths(
            "signIn", "/v1/auth/token", seedSignIn="/auth/signin", seedLogin="/user/login"
        ),
        opt=problems(401, 429),
        status_code=200,
    )
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SignIn],
        auth_service: NamedDependency[AuthService],
    ) -> Token:
        """Exchange email and password for an access token."""
        return await auth_service.sign_in(data, client_address(request))

    # The handler reads the user (refusing one deleted): the token check's read of the same
    # user would be the same read twice.
    @get(
        **with_seed_paths("verifyToken", "/v1/auth/verify", seedVerifyToken="/auth/verify-token"),
        dependencies=DELETION_CHECKED_BY_HANDLER,
    )
    async def verify(
        self, principal: NamedDependency[Principal], auth_service: NamedDependency[AuthService]
    ) -> TokenCheck:
        """Check the bearer token and return its user."""
        return await auth_service.check(principal)


class UsersController(Controller):
    path = "/api"
    tags = ["users"]

    @get(
        **with_seed_paths("getUser", "/v1/users/{user_id:str}", seedGetUser="/user/{user_id:str}"),
        opt=problems(403, 404),
    )
    async def get_user(
        self,
        user_id: FromPath[str],
        principal: NamedDependency[Principal],
        auth_service: NamedDependency[AuthService],
    ) -> User:
        """A user's profile (yourself, or anyone for admins)."""
        return await auth_service.get(principal, user_id)

    @delete(
        **with_seed_paths(
            "deleteUser", "/v1/users/{user_id:str}", seedDeleteUser="/user/{user_id:str}"
        ),
        opt=problems(403, 404),
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_user(
        self,
        user_id: FromPath[str],
        principal: NamedDependency[Principal],
        auth_service: NamedDependency[AuthService],
        state: State,
    ) -> None:
        """Delete an account; its cart and orders are deleted in the other services."""
        await auth_service.delete(principal, user_id, wake=state.cascade_wake)


router = Router(
    path="/",
    route_handlers=[AuthController, UsersController],
    dependencies={"auth_service": from_state("auth_service")},
)

"""The social API (SPEC §2) as one user, over the standard library's HTTP.

    api = await Api.login("http://127.0.0.1:8000", "ana", "passphrase")   # or Api(base_url, grant)
    room = await api.open_direct_room(friend_id)
    await api.follow(friend_id)
    post = await api.create_post(body="Sastipe!", visibility="followers")
    async for post in api.home_posts():       # every page, newest first
        ...

Every operation of ``GET /api/v1/openapi.json`` has a method here (a test holds the two
together). Each call runs the blocking ``urllib`` request in a thread, so it never stalls the
caller's event loop. A refusal raises ``ApiError`` with the server's stable ``code``.

An ``Api`` built from a ``Grant`` keeps it fresh: the access token is refreshed shortly before it
expires and once more if the server answers 401; refresh tokens rotate, so the newest grant is
kept (``api.grant``) and handed to ``on_grant`` for whoever stores it. ``api.access_token`` is
the token source a ``Client`` reconnects with.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, cast

from amaro_client import auth
from amaro_client.http import ApiError, call
from amaro_client.types import (
    Blocked,
    Comment,
    Follower,
    FollowRequest,
    FollowState,
    Media,
    MembersAdded,
    Page,
    Post,
    Profile,
    Relationship,
    Role,
    Room,
    Visibility,
)

__all__ = ["Api", "ApiError"]



def _fields(**given: Any) -> dict[str, Any]:
    """The JSON body of the arguments actually given (``None`` means "leave it out")."""
    return {k: v for k, v in given.items() if v is not None}


class Api:
    """The social API as one user: an access token, or a ``Grant`` that is refreshed as needed."""

    def __init__(self, base_url: str, token: str | auth.Grant, *, timeout_s: float = 10.0,
                 on_grant: Callable[[auth.Grant], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.on_grant = on_grant
        self.grant: auth.Grant | None = token if isinstance(token, auth.Grant) else None
        self._token = token.access_token if isinstance(token, auth.Grant) else token
        self._user_id = token.user_id if isinstance(token, auth.Grant) else ""
        self._refreshing = asyncio.Lock()

    @classmethod
    async def signup(cls, base_url: str, username: str, password: str, display_name: str = "",
                     **options: Any) -> Api:
        return cls(base_url, await auth.signup(base_url, username, password, display_name), **options)

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, **options: Any) -> Api:
        return cls(base_url, await auth.login(base_url, username, password), **options)

    # -- the session ------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The current access token (``access_token()`` refreshes it first when due)."""
        return self._token

    async def access_token(self) -> str:
        """A valid access token: refreshed first when the grant is about to expire."""
        if self.grant is not None and self.grant.expiring():
            await self.refresh(stale=self._token)
        return self._token

    async def refresh(self, *, stale: str | None = None) -> auth.Grant:
        """Trade the refresh token for a new grant (once, however many callers ask at the same
        time: ``stale`` is the access token the caller found wanting)."""
        if self.grant is None:
            raise ApiError(401, "no_refresh_token", "this Api was given an access token, not a grant")
        async with self._refreshing:
            if stale is None or stale == self._token:
                grant = await auth.refresh(self.base_url, self.grant.refresh_token, self.timeout_s)
                self.grant, self._token = grant, grant.access_token
                if self.on_grant is not None:
                    self.on_grant(grant)
            return self.grant

    async def logout(self) -> None:
        """Revoke this session's refresh token; the ``Api`` has no grant afterwards."""
        if self.grant is not None:
            await auth.logout(self.base_url, self.grant.refresh_token, self.timeout_s)
            self.grant = None

    async def user_id(self) -> str:
        if not self._user_id:
            self._user_id = (await self.me())["id"]
        return self._user_id

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      **query: str | int | None) -> Any:
        """``method`` on ``/api/v1<path>``; ``query`` pairs whose value is ``None`` are left out."""
        url = f"{self.base_url}/api/v1{path}"
        pairs = {k: str(v) for k, v in query.items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        token = await self.access_token()
        try:
            return await asyncio.to_thread(call, method, url, body, token, self.timeout_s)
        except ApiError as exc:
            if exc.status != 401 or self.grant is None:
                raise
        await self.refresh(stale=token)  # revoked early, or a clock that disagrees: once more
        return await asyncio.to_thread(call, method, url, body, self._token, self.timeout_s)

    async def _each(self, path: str, page_size: int | None) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            page = await self.request("GET", path, cursor=cursor, limit=page_size)
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if not cursor:
                return

    # -- me and people ----------------------------------------------------------------------------

    async def me(self) -> Profile:
        return cast(Profile, await self.request("GET", "/me"))

    async def update_me(self, *, display_name: str | None = None, bio: str | None = None,
                        private: bool | None = None) -> Profile:
        return cast(Profile, await self.request("PATCH", "/me", _fields(display_name=display_name, bio=bio,
                                                                          private=private)))

    async def user(self, user_id: str) -> Profile:
        return cast(Profile, await self.request("GET", f"/users/{user_id}"))

    async def user_by_name(self, username: str) -> Profile:
        return cast(Profile, await self.request("GET", f"/users/by-name/{urllib.parse.quote(username, safe='')}"))

    async def relationship(self, user_id: str) -> Relationship:
        return cast(Relationship, await self.request("GET", f"/users/{user_id}/relationship"))

    # -- follows and blocks -----------------------------------------------------------------------

    async def follow(self, user_id: str) -> FollowState:
        """``following``, or ``requested`` when the account is private."""
        return cast(FollowState, (await self.request("POST", f"/users/{user_id}/follow"))["state"])

    async def unfollow(self, user_id: str) -> FollowState:
        """Unfollow, or withdraw my request: ``none``."""
        return cast(FollowState, (await self.request("DELETE", f"/users/{user_id}/follow"))["state"])

    async def followers(self, user_id: str, *, cursor: str | None = None,
                        limit: int | None = None) -> Page[Follower]:
        return cast(Page[Follower], await self.request("GET", f"/users/{user_id}/followers", cursor=cursor,
                                                       limit=limit))

    async def following(self, user_id: str, *, cursor: str | None = None,
                        limit: int | None = None) -> Page[Follower]:
        return cast(Page[Follower], await self.request("GET", f"/users/{user_id}/following", cursor=cursor,
                                                       limit=limit))

    async def follow_requests(self, *, cursor: str | None = None, limit: int | None = None) -> Page[FollowRequest]:
        return cast(Page[FollowRequest], await self.request("GET", "/me/follow-requests", cursor=cursor,
                                                            limit=limit))

    async def accept_request(self, user_id: str) -> None:
        await self.request("POST", f"/me/follow-requests/{user_id}/accept")

    async def decline_request(self, user_id: str) -> None:
        await self.request("POST", f"/me/follow-requests/{user_id}/decline")

    async def block(self, user_id: str) -> None:
        await self.request("POST", f"/users/{user_id}/block")

    async def unblock(self, user_id: str) -> None:
        await self.request("DELETE", f"/users/{user_id}/block")

    async def blocks(self, *, cursor: str | None = None, limit: int | None = None) -> Page[Blocked]:
        return cast(Page[Blocked], await self.request("GET", "/me/blocks", cursor=cursor, limit=limit))

    def all_followers(self, user_id: str, *, page_size: int | None = None) -> AsyncIterator[Follower]:
        return self._each(f"/users/{user_id}/followers", page_size)

    def all_following(self, user_id: str, *, page_size: int | None = None) -> AsyncIterator[Follower]:
        return self._each(f"/users/{user_id}/following", page_size)

    def all_follow_requests(self, *, page_size: int | None = None) -> AsyncIterator[FollowRequest]:
        return self._each("/me/follow-requests", page_size)

    def all_blocks(self, *, page_size: int | None = None) -> AsyncIterator[Blocked]:
        return self._each("/me/blocks", page_size)

    # -- rooms ------------------------------------------------------------------------------------

    async def rooms(self, *, cursor: str | None = None, limit: int | None = None) -> Page[Room]:
        """My rooms, most recently active first, each with its ``unread`` count."""
        return cast(Page[Room], await self.request("GET", "/rooms", cursor=cursor, limit=limit))

    def all_rooms(self, *, page_size: int | None = None) -> AsyncIterator[Room]:
        return self._each("/rooms", page_size)

    async def room(self, room_id: str) -> Room:
        """A room I am a member of, with its ``members``."""
        return cast(Room, await self.request("GET", f"/rooms/{room_id}"))

    async def create_room(self, kind: Literal["direct", "group"], members: list[str],
                          title: str | None = None) -> Room:
        return cast(Room, await self.request("POST", "/rooms", _fields(kind=kind, members=members, title=title)))

    async def open_direct_room(self, user_id: str) -> Room:
        """The direct room with ``user_id`` (created on first use, the same one afterwards)."""
        return await self.create_room("direct", [user_id])

    async def create_group(self, title: str, members: list[str]) -> Room:
        return await self.create_room("group", members, title)

    async def rename_room(self, room_id: str, title: str) -> Room:
        return cast(Room, await self.request("PATCH", f"/rooms/{room_id}", {"title": title}))

    async def add_members(self, room_id: str, user_ids: list[str]) -> MembersAdded:
        return cast(MembersAdded, await self.request("POST", f"/rooms/{room_id}/members", {"user_ids": user_ids}))

    async def set_role(self, room_id: str, user_id: str, role: Role) -> Room:
        """Make a member an admin or a member, or (``owner``) hand the room over."""
        return cast(Room, await self.request("PATCH", f"/rooms/{room_id}/members/{user_id}", {"role": role}))

    async def remove_member(self, room_id: str, user_id: str) -> None:
        await self.request("DELETE", f"/rooms/{room_id}/members/{user_id}")

    async def leave_room(self, room_id: str) -> None:
        await self.remove_member(room_id, await self.user_id())

    async def mute(self, room_id: str, on: bool = True) -> None:
        await self.request("PUT" if on else "DELETE", f"/rooms/{room_id}/mute")

    # -- posts and comments -----------------------------------------------------------------------

    async def post(self, post_id: str) -> Post:
        return cast(Post, await self.request("GET", f"/posts/{post_id}"))

    async def create_post(self, *, body: str | None = None, visibility: Visibility | None = None,
                          upload_id: str | None = None, post_id: str | None = None,
                          kind: Literal["image", "video"] | None = None) -> Post:
        """A text post (``body``), or the media post of an upload (``upload_id``, or the
        ``post_id`` its creation answered), with an optional body."""
        return cast(Post, await self.request("POST", "/posts", _fields(
            body=body, visibility=visibility, upload_id=upload_id, post_id=post_id, kind=kind)))

    async def publish(self, body: str, *, visibility: Visibility = "public") -> Post:
        """A text post, published at once."""
        return await self.create_post(body=body, visibility=visibility)

    async def edit_post(self, post_id: str, *, body: str | None = None, visibility: Visibility | None = None) -> Post:
        return cast(Post, await self.request("PATCH", f"/posts/{post_id}", _fields(body=body, visibility=visibility)))

    async def delete_post(self, post_id: str) -> None:
        await self.request("DELETE", f"/posts/{post_id}")

    async def comments(self, post_id: str, *, cursor: str | None = None, limit: int | None = None) -> Page[Comment]:
        """Oldest first, replies after their comment."""
        return cast(Page[Comment], await self.request("GET", f"/posts/{post_id}/comments", cursor=cursor,
                                                      limit=limit))

    def all_comments(self, post_id: str, *, page_size: int | None = None) -> AsyncIterator[Comment]:
        return self._each(f"/posts/{post_id}/comments", page_size)

    async def comment(self, post_id: str, body: str, *, parent_id: str | None = None) -> Comment:
        return cast(Comment, await self.request("POST", f"/posts/{post_id}/comments",
                                                _fields(body=body, parent_id=parent_id)))

    async def delete_comment(self, comment_id: str) -> None:
        await self.request("DELETE", f"/comments/{comment_id}")

    # -- timelines and media ----------------------------------------------------------------------

    async def home(self, *, cursor: str | None = None, limit: int | None = None) -> Page[Post]:
        """A page of my home timeline, newest first."""
        return cast(Page[Post], await self.request("GET", "/timelines/home", cursor=cursor, limit=limit))

    def home_posts(self, *, page_size: int | None = None) -> AsyncIterator[Post]:
        """My whole home timeline, newest first, fetched a page at a time as it is read."""
        return self._each("/timelines/home", page_size)

    async def user_posts(self, user_id: str, *, cursor: str | None = None, limit: int | None = None) -> Page[Post]:
        return cast(Page[Post], await self.request("GET", f"/users/{user_id}/posts", cursor=cursor, limit=limit))

    def all_user_posts(self, user_id: str, *, page_size: int | None = None) -> AsyncIterator[Post]:
        return self._each(f"/users/{user_id}/posts", page_size)

    async def media(self, upload_id: str) -> Media:
        """A media item's state and, once playable, its signed URLs."""
        return cast(Media, await self.request("GET", f"/media/{upload_id}"))

"""What the social API answers, as ``TypedDict``s (SPEC §2, "The social API"; the exact schemas
are ``GET /api/v1/openapi.json``). They are the decoded JSON itself: index them like dicts, and
expect fields the server adds later to be there too."""

from __future__ import annotations

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")
Visibility = Literal["public", "followers", "private"]
Role = Literal["owner", "admin", "member"]
FollowState = Literal["following", "requested", "none"]
MediaState = Literal["uploading", "processing", "good_enough", "upgraded", "failed"]


class SmallProfile(TypedDict):
    id: str
    username: str
    display_name: str


class Profile(SmallProfile):
    bio: str
    private: bool
    followers_count: int
    following_count: int
    posts_count: int
    created_at: str


class Relationship(TypedDict):
    following: bool
    followed_by: bool
    requested: bool
    requested_by: bool
    blocked: bool


class Follower(TypedDict):
    user: SmallProfile
    followed_at: str


class FollowRequest(TypedDict):
    user: SmallProfile
    requested_at: str


class Blocked(TypedDict):
    user: SmallProfile
    blocked_at: str


class Member(SmallProfile):
    role: Role
    joined_at: str


class Room(TypedDict):
    id: str
    kind: Literal["direct", "group"]
    title: str
    members_count: int
    my_role: Role
    muted: bool
    unread: int
    created_at: NotRequired[str]
    active_at: NotRequired[str]
    peer: NotRequired[SmallProfile | None]
    last_message: NotRequired[dict[str, Any] | None]
    last_offset: NotRequired[int]
    members: NotRequired[list[Member]]


class MembersAdded(TypedDict):
    added: list[str]
    room: Room


class Post(TypedDict):
    id: str
    author: SmallProfile
    kind: Literal["text", "image", "video"]
    state: Literal["processing", "published", "failed"]
    visibility: Visibility
    body: str
    media_id: str | None
    comments_count: int
    reactions: dict[str, int]
    created_at: str
    published_at: str | None
    edited_at: str | None


class Comment(TypedDict):
    id: str
    post_id: str
    parent_id: str | None
    author: SmallProfile
    body: str
    created_at: str


class MediaUrls(TypedDict, total=False):
    """Signed URLs; empty until the media is good enough. ``playlist`` is what a player opens
    (the ladder once upgraded, else the fast rendition as it grows)."""

    playlist: str | None
    master: str | None
    fast: str | None
    fast_complete: bool
    poster: str | None
    preview: str | None
    storyboard: dict[str, str | None]


class Media(TypedDict):
    """``GET /media/{upload_id}``; the fields beyond ``id``, ``state`` and ``urls`` come once a
    worker picked the upload up (``width``, ``height``, ``duration_s``, ``renditions``, ``plan``...)."""

    id: str
    state: MediaState
    urls: MediaUrls
    post_id: NotRequired[str]
    owner_id: NotRequired[str]
    kind: NotRequired[Literal["image", "video"]]
    failure: NotRequired[dict[str, Any] | None]
    width: NotRequired[int | None]
    height: NotRequired[int | None]
    duration_s: NotRequired[float | None]
    renditions: NotRequired[list[dict[str, Any]]]
    expires_at: NotRequired[Any]


class Page(TypedDict, Generic[T]):
    """One page of a list: pass ``next_cursor`` back for the next one (``None``: the last page)."""

    items: list[T]
    next_cursor: str | None

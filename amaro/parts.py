"""How the parts are built and wired: each takes its settings branch and, where it needs another
part, the object the root hands it for the protocol it declared.

=======================  ==========================================  ============================
consumer (protocol)      what it needs                               wired to
=======================  ==========================================  ============================
realtime ``Access``      room membership, post and online visibility  ``feed.access.Access``
                         (blocks included), friends (online:friends)
realtime ``AccessTokens``  the user of an access token               ``feed.tokens.TokenSigner``
feed ``WindowCounter``   fixed windows shared by every node           ``realtime.limits.UserLimits``
feed ``Subscriptions``   end a user's subscriptions everywhere        ``realtime.events.EventSink``
feed ``FeedEvents``      feed frames and post events, durable         ``realtime.events.EventSink``
feed ``RoomActivity``    rooms' last message and unread counts        ``realtime.chat.ChatStore``
feed ``ReactionCounts``  reaction totals shown with posts             ``realtime.reactions.ReactionStore``
feed ``PostMedia``       a deleted post's upload and objects, the     ``media.removal.PostRemoval``
                         post of an upload
feed ``PostWatchers``    this node's post subscriptions, rechecked    ``realtime.hub.Hub``
realtime ``ReactionObserver``  a reaction stored: feed events, caches  ``feed.social.PostReactions``
media ``AccessTokens``   the user of an access token                  ``feed.tokens.TokenSigner``
media ``DraftPosts``     the upload's post                            ``feed.posts.PostStates``
media ``PostVisibility``  who may play a post's media                 ``feed.access.Access``
media ``MediaEvents``    events to the uploader's socket              ``realtime.events.EventSink``
nara ``EventSink``       events to the uploader's socket              ``realtime.events.EventSink``
nara ``Posts``           the media's post (published when ready)      ``feed.posts.PostStates``
nara ``MediaStore``      decrypted originals, stored outputs          ``media.worker_store.WorkerStore``
=======================  ==========================================  ============================

The hand-off from uploads to workers is a message, not a call: media/ writes jobs on a stream
whose schema it owns (``media/jobs.py``), workers read it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amaro.services import Services
from amaro.settings import Settings
from feed.app import FeedApi, FeedCaches
from feed.cache import Cache
from feed.posts import PostStates
from feed.tokens import TokenSigner, signer_for
from feed.web import Cursors, Endpoint, openapi_document, openapi_paths, respond
from media.app import close_store, open_store
from media.events import MediaEvents
from media.keyring import Keyring
from media.playback import UrlSigner
from media.removal import PostRemoval
from media.runtime import MediaContext
from realtime.broker import RedisBroker
from realtime.chat import ChatStore
from realtime.events import EventSink
from realtime.node import HubNode
from realtime.reactions import ReactionStore
from realtime.store import ChannelStore


def token_signer(settings: Settings) -> TokenSigner:
    return signer_for(settings.auth)


def url_signer(settings: Settings) -> UrlSigner:
    """Signed media URLs: their own secret, else keys derived from the token secrets."""
    auth = settings.auth
    return UrlSigner.from_settings(settings.playback, (auth.token_secret, *auth.token_previous_secrets))


#: How long an upload request waits for its media event, and a media job for its own (a job's
#: event is part of its work, and a failed one is retried).
UPLOAD_EVENT_TIMEOUT_S = 2.0
JOB_EVENT_TIMEOUT_S = 15.0


def event_sink(settings: Settings, redis: aioredis.Redis, db: asyncpg.Pool, *,
               timeout_s: float = UPLOAD_EVENT_TIMEOUT_S) -> EventSink:
    """Durable events (media, feed) from a role that is not a hub: stored, then fanned out by the
    hubs. Its broker publishes under a name of its own, never read as an inbox."""
    return EventSink(ChannelStore(db), RedisBroker(redis, f"sink-{settings.node.node_id}", settings.hub.broker),
                     timeout_s=timeout_s)


async def open_media(settings: Settings, redis: aioredis.Redis, db: asyncpg.Pool, *, events: MediaEvents,
                     tokens: TokenSigner, ensure_bucket: bool = False) -> MediaContext:
    """The upload path's context: the store, the keyring (loaded off the loop) and its collaborators."""
    keyring = await asyncio.to_thread(Keyring.load, settings.media)
    store = await open_store(settings.media, ensure_bucket=ensure_bucket)
    return MediaContext(media=settings.media, redis=redis, db=db, store=store, keyring=keyring, tokens=tokens,
                        posts=PostStates(), events=events, allowed_origins=settings.node.allowed_origins)


async def close_media(ctx: MediaContext) -> None:
    await close_store(ctx.store)


def _derived_key(settings: Settings, label: bytes) -> bytes:
    return hmac.new(settings.auth.token_secret.encode(), label, hashlib.sha256).digest()


def feed_api(settings: Settings, services: Services, hub: HubNode, media: MediaContext,
             tokens: TokenSigner) -> FeedApi:
    """The social domain of a hub node, wired to the hub (events, chat, reactions, limits) and to
    the upload path (a deleted post's media)."""
    feed = settings.feed

    def cache(name: str) -> Cache:
        return Cache(services.redis, name, local_items=feed.cache_local_items, local_ttl_s=feed.cache_local_ttl_s,
                     ttl_s=feed.cache_ttl_s)

    return FeedApi(
        db=services.db, redis=services.redis, tokens=tokens, events=hub.events,
        cursors=Cursors(_derived_key(settings, b"amaro-feed-cursor/v1")), limits=hub.limits, settings=feed,
        auth=settings.auth, rooms=ChatStore(services.db), reactions=ReactionStore(services.db),
        media=PostRemoval(media), caches=FeedCaches(posts=cache("posts"), profiles=cache("profiles"),
                                                    reactions=cache("reactions"), relations=cache("relations")),
        watchers=hub.hub,
    )


def openapi_route(endpoints: list[Endpoint], extra_paths: dict[str, Any]) -> Route:
    """``GET /api/v1/openapi.json``: the document of exactly the endpoints this node serves."""
    from importlib import metadata

    try:
        version = metadata.version("amaro-than")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        version = "0+unknown"
    document = openapi_document({**openapi_paths(endpoints), **extra_paths}, version=version)

    async def serve(request: Request) -> Response:
        return respond(request, document, cache="public, max-age=300")

    return Route("/api/v1/openapi.json", serve, methods=["GET"])

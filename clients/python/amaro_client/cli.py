"""``amaro-client`` (also ``amaro client``): the platform from a terminal, for operators and debugging.

    amaro-client signup ana                  # or login; the session is kept (0600) for later calls
    amaro-client whoami
    amaro-client rooms
    amaro-client tail room:<id>              # frames as they come, resumed across reconnects
    amaro-client send <room id> "Sastipe!"
    amaro-client upload dance.mp4 --body "Khelas!"   # progress, then media events to good_enough
    amaro-client media <upload id> --watch

Exit status: 0 done, 1 the server refused (its message on stderr) or could not be reached, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from amaro_client import auth
from amaro_client.api import Api
from amaro_client.client import Client, ClientError
from amaro_client.events import MediaFailed, MediaUpdate, view_of, wait_for_media
from amaro_client.http import ApiError
from amaro_client.sessionfile import SessionFile, home
from amaro_client.uploads import ResumeStore, UploadCancelled, Uploads
from protocol import frames as F

PROG = "amaro-client"
DEFAULT_URL = "http://127.0.0.1:8000"


class Usage(Exception):
    """A mistake of the caller's: exit 2."""


def ws_url_for(http_url: str) -> str:
    """The socket beside an HTTP base: same host, port 8001 (what ``amaro dev`` serves)."""
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.hostname or '127.0.0.1'}:8001/ws"


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    out: TextIO
    files: SessionFile
    url: str
    ws: str
    env: Mapping[str, str]

    def api(self) -> Api:
        stored = self.files.load()
        if stored is None:
            raise Usage(f"not logged in: run `{PROG} login <username>` first")
        grant, _ = stored
        return Api(self.url, grant, on_grant=self.keep)

    def keep(self, grant: auth.Grant) -> None:
        """Refresh tokens rotate: the new grant replaces the spent one on disk at once."""
        self.files.save(grant, {"url": self.url, "ws": self.ws})

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def emit(self, value: Any) -> None:
        self.say(json.dumps(value, ensure_ascii=False, default=repr))

    def show(self, value: Any, line: str) -> None:
        """``value`` as a JSON line with ``--json``, else the human ``line``."""
        if self.args.json:
            self.emit(value)
        else:
            self.say(line)


def frame_map(frame: F.Frame) -> dict[str, Any]:
    return {"t": frame.TYPE, **{f.name: getattr(frame, f.name) for f in dataclasses.fields(frame)}}


def frame_line(frame: F.Frame) -> str:
    """One human line per frame: what a person looking at a channel wants to read."""
    if isinstance(frame, F.ChatMessage):
        return f"[{frame.offset}] {frame.sender}: {frame.body}"
    if isinstance(frame, F.TypingNotice):
        return f"{frame.user} {'is typing…' if frame.active else 'stopped typing'}"
    if isinstance(frame, (F.PresenceJoin, F.PresenceLeave)):
        return f"{frame.user} {'joined' if isinstance(frame, F.PresenceJoin) else 'left'} {frame.ch}"
    view = view_of(frame)
    if isinstance(view, MediaUpdate):
        return f"media {view.describe()}"
    if view is not None:
        return f"feed {view.kind} {json.dumps(view.data, ensure_ascii=False, default=repr)}"
    fields = {k: v for k, v in frame_map(frame).items() if k != "t"}
    return f"{frame.TYPE} {json.dumps(fields, ensure_ascii=False, default=repr)}"


async def socket(ctx: Context, api: Api) -> Client:
    client = Client(ctx.ws, token_source=api.access_token, client_name=f"{PROG}/0.1")
    await client.connect()
    return client


# -- accounts ---------------------------------------------------------------------------------------

def password(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    given = args.password or env.get("AMARO_PASSWORD")
    if given:
        return str(given)
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if line:
            return line
        raise Usage("no password: give --password, AMARO_PASSWORD, or one line on stdin")
    return getpass.getpass(f"password for {args.username}: ")


async def cmd_login(ctx: Context) -> int:
    args = ctx.args
    if args.command == "signup":
        grant = await auth.signup(ctx.url, args.username, password(args, ctx.env), args.display_name or "")
    else:
        grant = await auth.login(ctx.url, args.username, password(args, ctx.env))
    ctx.keep(grant)
    ctx.say(f"logged in as {grant.username} ({grant.user_id})")
    return 0


async def cmd_logout(ctx: Context) -> int:
    stored = ctx.files.load()
    if stored is not None:
        try:
            await auth.logout(ctx.url, stored[0].refresh_token)
        finally:
            ctx.files.forget()
    ctx.say("logged out")
    return 0


async def cmd_whoami(ctx: Context) -> int:
    me = await ctx.api().me()
    if ctx.args.json:
        ctx.emit(me)
    else:
        ctx.say(f"{me['username']} ({me['display_name']}) {me['id']}: {me['followers_count']} followers, "
                f"{me['following_count']} following, {me['posts_count']} posts")
    return 0


async def cmd_rooms(ctx: Context) -> int:
    async for room in ctx.api().all_rooms():
        if ctx.args.json:
            ctx.emit(room)
            continue
        peer = room.get("peer")
        title = room["title"] or (peer["display_name"] or peer["username"] if peer else "") or "(untitled)"
        unread = f"  {room['unread']} unread" if room["unread"] else ""
        ctx.say(f"{room['id']}  {room['kind']:6}  {title}{unread}")
    return 0


# -- the socket -------------------------------------------------------------------------------------

async def cmd_tail(ctx: Context) -> int:
    api = ctx.api()
    channel = ctx.args.channel
    if channel in ("me", "user:me"):
        channel = f"user:{await api.user_id()}"
    client = await socket(ctx, api)
    seen = 0
    try:
        await client.subscribe(channel, presence=ctx.args.presence)
        if not ctx.args.json:
            ctx.say(f"# tailing {channel}")
        while ctx.args.count is None or seen < ctx.args.count:
            frame = await client.next_event(timeout_s=ctx.args.timeout)
            if isinstance(frame, F.Welcome) and not ctx.args.json:
                ctx.say(f"# connected to {frame.node}")  # again after each reconnect, then resumed
            if isinstance(frame, F.Subscribed) and frame.ch == channel and not frame.recovered:
                print(f"{PROG}: {channel}: what was missed is older than the server keeps; "
                      "some frames were lost", file=sys.stderr)
            if isinstance(frame, (F.Subscribed, F.Unsubscribed)) or getattr(frame, "ch", None) != channel:
                continue  # resubscription answers; frames of no channel or of another one
            seen += 1
            ctx.show(frame_map(frame), frame_line(frame))
    except TimeoutError:
        if ctx.args.count is not None:
            print(f"{PROG}: {seen} of {ctx.args.count} frames within {ctx.args.timeout} s", file=sys.stderr)
            return 1
    finally:
        await client.close()
    return 0


def room_id(text: str) -> str:
    return text.removeprefix("room:")


async def cmd_send(ctx: Context) -> int:
    api = ctx.api()
    client = await socket(ctx, api)
    try:
        ack = await client.chat_send(room_id(ctx.args.room), ctx.args.text)
    finally:
        await client.close()
    ctx.show({"room": ack.room, "mid": ack.mid, "offset": ack.offset}, f"sent: offset {ack.offset}, mid {ack.mid}")
    return 0


# -- media ------------------------------------------------------------------------------------------

class ProgressLine:
    """A bar redrawn in place on a terminal; elsewhere (a log, a pipe) a line per 10 %."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty, self.last = out, tty, -1

    def __call__(self, sent: int, total: int) -> None:
        percent = 100 if total == 0 else int(100 * sent / total)
        if self.tty:
            filled = percent * 30 // 100
            self.out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% "
                           f"{sent / 1e6:.1f}/{total / 1e6:.1f} MB")
            if sent >= total:
                self.out.write("\n")
            self.out.flush()
        elif percent // 10 > self.last // 10 or (percent == 100 and self.last != 100):
            self.last = percent
            print(f"upload {percent}%", file=self.out, flush=True)


async def watch(ctx: Context, client: Client, api: Api, upload_id: str, upgraded: bool) -> int:
    def show(update: MediaUpdate) -> None:
        ctx.show(dataclasses.asdict(update), f"media {update.describe()}")

    until: Literal["good_enough", "upgraded"] = "upgraded" if upgraded else "good_enough"
    final = await wait_for_media(client, upload_id, until=until, api=api, timeout_s=ctx.args.timeout,
                                 on_update=show)
    if not final.mid:  # known from the media's state, not from an event seen here
        show(final)
    return 0


async def cmd_upload(ctx: Context) -> int:
    args = ctx.args
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise Usage(f"{path}: no such file")
    api = ctx.api()
    me = await api.user_id()
    client = await socket(ctx, api)
    try:
        await client.subscribe(f"user:{me}")  # before the first byte: no media event can be missed
        uploads = Uploads.for_api(api, store=ResumeStore(ctx.files.uploads), chunk_size=args.chunk_mb * 1024 * 1024,
                                  max_rate_bps=args.max_rate)
        bar = ProgressLine(sys.stderr, sys.stderr.isatty())
        done = await uploads.upload(path, progress=bar, user=me)
        post = await api.create_post(upload_id=done.upload_id, body=args.body, visibility=args.visibility)
        ctx.show({"upload_id": done.upload_id, "post_id": post["id"]},
                 f"uploaded {path.name}: upload {done.upload_id}, post {post['id']}")
        if args.no_wait:
            return 0
        return await watch(ctx, client, api, done.upload_id, args.wait_upgraded)
    finally:
        await client.close()


async def cmd_media(ctx: Context) -> int:
    api = ctx.api()
    media = await api.media(ctx.args.upload_id)
    ctx.show(media, f"{media['id']} {media['state']} {json.dumps(media['urls'], default=repr)}")
    if not (ctx.args.watch or ctx.args.wait_upgraded):
        return 0
    client = await socket(ctx, api)
    try:
        await client.subscribe(f"user:{await api.user_id()}")
        return await watch(ctx, client, api, ctx.args.upload_id, ctx.args.wait_upgraded)
    finally:
        await client.close()


# -- the command line -------------------------------------------------------------------------------

COMMANDS = {"signup": cmd_login, "login": cmd_login, "logout": cmd_logout, "whoami": cmd_whoami,
            "rooms": cmd_rooms, "tail": cmd_tail, "send": cmd_send, "upload": cmd_upload, "media": cmd_media}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"HTTP base (default: $AMARO_URL, the session's, or {DEFAULT_URL})")
    common.add_argument("--ws", default=argparse.SUPPRESS,
                        help="socket URL (default: $AMARO_WS_URL, or the HTTP base's host, port 8001, /ws)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON lines out")
    parser = argparse.ArgumentParser(prog=PROG, parents=[common], description="The Amaro Than platform from a "
                                     "terminal. Exit status: 0 done, 1 refused by the server, 2 usage.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary in (("signup", "create an account and keep its session"),
                          ("login", "log in and keep the session")):
        p = sub.add_parser(name, parents=[common], help=summary, description=summary)
        p.add_argument("username")
        p.add_argument("--password", help="(else $AMARO_PASSWORD, a line on stdin, or a prompt)")
        if name == "signup":
            p.add_argument("--display-name")
    sub.add_parser("logout", parents=[common], help="revoke the kept session and forget it")
    sub.add_parser("whoami", parents=[common], help="my profile")
    sub.add_parser("rooms", parents=[common], help="my rooms, most recently active first, with unread counts")
    tail = sub.add_parser("tail", parents=[common], help="subscribe to a channel and print its frames")
    tail.add_argument("channel", help="room:<id>, post:<id>, user:<id>, or me")
    tail.add_argument("--presence", action="store_true", help="appear in the channel's presence")
    tail.add_argument("--count", type=int, help="stop after this many frames")
    tail.add_argument("--timeout", type=float, help="with --count: give up after this many seconds")
    send = sub.add_parser("send", parents=[common], help="send a chat message")
    send.add_argument("room", help="room id (or room:<id>)")
    send.add_argument("text")
    upload = sub.add_parser("upload", parents=[common], help="upload a file, post it, watch its media events")
    upload.add_argument("file")
    upload.add_argument("--body", help="the post's text")
    upload.add_argument("--visibility", choices=["public", "followers", "private"])
    upload.add_argument("--wait-upgraded", action="store_true", help="wait for upgraded, not only good_enough")
    upload.add_argument("--no-wait", action="store_true", help="stop once uploaded and posted")
    upload.add_argument("--chunk-mb", type=int, default=8, help="bytes per PATCH, in MiB (default 8)")
    upload.add_argument("--max-rate", type=float, help="at most this many bytes per second")
    upload.add_argument("--timeout", type=float, default=600.0, help="how long to wait for media events")
    media = sub.add_parser("media", parents=[common], help="a media item's state; --watch for its events")
    media.add_argument("upload_id")
    media.add_argument("--watch", action="store_true", help="wait until it is good enough")
    media.add_argument("--wait-upgraded", action="store_true", help="wait until it is upgraded")
    media.add_argument("--timeout", type=float, default=600.0)
    return parser


def context(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> Context:
    files = SessionFile(home(env))
    stored = files.load()
    urls = stored[1] if stored is not None else {}
    url = getattr(args, "url", None) or env.get("AMARO_URL") or urls.get("url") or DEFAULT_URL
    ws = getattr(args, "ws", None) or env.get("AMARO_WS_URL") or (
        urls["ws"] if urls.get("ws") and urls.get("url") == url else ws_url_for(url))
    if not url.startswith(("http://", "https://")):
        raise Usage(f"--url must be http(s)://, got {url!r}")
    if not ws.startswith(("ws://", "wss://")):
        raise Usage(f"--ws must be ws(s)://, got {ws!r}")
    args.json = getattr(args, "json", False)
    return Context(args, out, files, url.rstrip("/"), ws, env)


def main(argv: Sequence[str] | None, env: Mapping[str, str], out: TextIO | None = None) -> int:
    """Run one command; ``env`` is the environment it reads its defaults from (``AMARO_URL``,
    ``AMARO_WS_URL``, ``AMARO_CLIENT_HOME``, ``AMARO_PASSWORD``)."""
    args = build_parser().parse_args(argv)
    try:
        ctx = context(args, env, out or sys.stdout)
        return asyncio.run(COMMANDS[args.command](ctx))
    except Usage as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (ApiError, ClientError, MediaFailed) as exc:
        print(f"{PROG}: refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, UploadCancelled) as exc:
        print(f"{PROG}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The console script: this program's composition root, the one place it reads the environment."""
    sys.exit(main(None, os.environ))


if __name__ == "__main__":
    entry()

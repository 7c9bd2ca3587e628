"""The first beta's stack, rebuilt on purpose as the crash replay's baseline (issue 24, item 4).

A small HTTP/JSON server that does what that beta did, naive by design and not broken:

- a fixed pool of synchronous worker threads (``--workers``, 4 by default), one request each from
  start to end, and no keep-alive (every answer closes its connection, like a sync WSGI worker);
- every read goes to PostgreSQL through a synchronous driver (psycopg), one connection per worker;
  no cache in front of it;
- an upload is one POST whose whole body is written to local disk inside the request, then ffmpeg
  transcodes it to one MP4 rendition, still inside the request: the answer comes after both;
- no socket: chat and presence are polled with GETs every second or two.

Run it with ``python -m loadtests.naive --port P --data DIR --db URL``; the crash runner's naive
target (loadtests/crash/naive_target.py) starts it that way.
"""

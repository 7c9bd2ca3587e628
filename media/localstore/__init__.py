"""The local-disk object store of embedded mode: ``store.LocalStore`` (objects, multipart uploads),
``multipart`` (a multipart object completed by a rename), ``files`` (write calls shaped for a disk
shared with PostgreSQL)."""

from media.localstore.store import LocalStore

__all__ = ["LocalStore"]

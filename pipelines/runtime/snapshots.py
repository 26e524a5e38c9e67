"""Snapshots of the runtime's per-partition state: framed, authenticated, versioned.

A snapshot is ``MAGIC | mode | MAC | payload``: the payload is a pickle of the partition's
state (reorder buffer, watermark, detector states, counters), the MAC an HMAC-SHA256 over
it with the configured snapshot key — or a plain SHA-256 checksum when no key is set,
which detects corruption but not forgery. Unpickling runs code chosen by whoever wrote the
bytes, so the MAC is checked before anything is unpickled; without a key, keep snapshots
where only the auditor can write. A snapshot names the detectors and the version of their
state layout; restoring into a runtime with other detectors or versions is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

from auditor.errors import AuditorError

__all__ = ["SnapshotError", "decode_snapshot", "encode_snapshot"]

MAGIC = b"CDSA-RT1"
_KEYED, _UNKEYED = b"K", b"S"
_MAC_BYTES = 32
_HEADER = len(MAGIC) + 1 + _MAC_BYTES


class SnapshotError(AuditorError):
    """A snapshot that cannot be restored: corrupt, forged, or from other detectors."""


def _mac(key: bytes | None, payload: bytes) -> bytes:
    if key is None:
        return hashlib.sha256(payload).digest()
    return hmac.digest(key, payload, "sha256")


def encode_snapshot(content: dict[str, Any], key: bytes | None) -> bytes:
    """Frame ``content`` (picklable) as snapshot bytes."""
    payload = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
    mode = _UNKEYED if key is None else _KEYED
    return MAGIC + mode + _mac(key, payload) + payload


def decode_snapshot(data: bytes, key: bytes | None) -> dict[str, Any]:
    """Check and unpickle snapshot bytes.

    Raises:
        SnapshotError: Not a snapshot, keyed differently, or altered since it was written.
    """
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise SnapshotError("not a stream runtime snapshot (bad header)")
    mode = data[len(MAGIC) : len(MAGIC) + 1]
    expected = _UNKEYED if key is None else _KEYED
    if mode != expected:
        raise SnapshotError(
            "the snapshot was written with a snapshot key and this runtime has none"
            if mode == _KEYED
            else "the snapshot has no key and this runtime requires one"
        )
    mac = data[len(MAGIC) + 1 : _HEADER]
    payload = data[_HEADER:]
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise SnapshotError("the snapshot failed its integrity check (altered or wrong key)")
    # The MAC above was verified before unpickling: only bytes we wrote get this far.
    content = pickle.loads(payload)  # noqa: S301 - authenticated above
    if not isinstance(content, dict):
        raise SnapshotError("the snapshot payload has an unexpected shape")
    return content

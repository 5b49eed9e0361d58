# -*- test-case-name: tests.test_push -*-
"""The daemon's VAPID key (RFC 8292): who signs its Web Push messages.

A P-256 key made with py-vapid on first start and kept as PEM in a file of its own
(0600, beside the token secret), made and read with the care of
:mod:`vibetwist.model.privatefiles`: another user who could read it, or plant one of
their own, could send notifications in the daemon's name. Browsers are given the
public key (``GET /api/push/vapid-public-key``) as the ``applicationServerKey`` of
their subscription, and push services check each message's
``Authorization: vapid t=JWT,k=KEY`` against it.
"""

from __future__ import annotations

import base64
import errno
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from vibetwist.errors import VibetwistError
from vibetwist.model.privatefiles import (
    UnsafePath,
    check_private_file,
    create_private,
    make_private_dir,
    read_private,
)

#: How long a signature stays valid (push services refuse more than 24 hours).
SIGNATURE_LIFETIME = 12 * 3600
#: A signature is made again when less than this is left of it.
SIGNATURE_MARGIN = 3600
MAX_KEY_FILE = 16 * 1024


class VapidKeyError(VibetwistError):
    """The VAPID key file is unsafe or unreadable."""


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push spells keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _read(path: Path) -> Vapid02:
    try:
        check_private_file(path)
        pem = read_private(path, MAX_KEY_FILE)
    except UnsafePath as e:
        raise VapidKeyError(f"the VAPID key file {e}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise VapidKeyError(f"the VAPID key file {path} is a symbolic link; it must be a file") from e
        raise
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise VapidKeyError(f"the VAPID key file {path} does not hold a PEM private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError(f"the VAPID key in {path} is not a P-256 key")
    return Vapid02(key)


def load_vapid(path: Path) -> VapidKey:
    """The key in path, made (0600) if nothing is there yet; VapidKeyError if it is unsafe."""
    try:
        return VapidKey(_read(path))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise VapidKeyError(f"cannot read the VAPID key file {path}: {e.strerror}") from e
    try:
        make_private_dir(path.parent)
    except UnsafePath as e:
        raise VapidKeyError(f"the folder of the VAPID key file: {e}") from None
    fresh = Vapid02()
    fresh.generate_keys()
    # False: another daemon made one first, or something else is there now; read that.
    create_private(path, fresh.private_pem())
    try:
        return VapidKey(_read(path))
    except OSError as e:
        raise VapidKeyError(f"cannot read the VAPID key file {path}: {e.strerror}") from e


class VapidKey:
    """A VAPID key pair: its public key for browsers, and signatures for push services."""

    def __init__(self, vapid: Vapid02, clock: Any = time.time) -> None:
        self._vapid = vapid
        self._clock = clock
        #: audience -> (expiry, Authorization header)
        self._signed: dict[str, tuple[float, str]] = {}
        raw = vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        #: The public key as browsers take it (``applicationServerKey``): base64url, 65 bytes.
        self.public_key = b64url(raw)

    def authorization(self, audience: str, contact: str) -> str:
        """The ``Authorization`` header for a push service at audience (``https://host[:port]``),
        reused until it is near its expiry."""
        now = self._clock()
        kept = self._signed.get(audience)
        if kept is not None and kept[0] - now > SIGNATURE_MARGIN:
            return kept[1]
        expiry = int(now) + SIGNATURE_LIFETIME
        header = self._vapid.sign({"aud": audience, "exp": expiry, "sub": contact})["Authorization"]
        if len(self._signed) > 64:
            self._signed.clear()
        self._signed[audience] = (expiry, header)
        return str(header)

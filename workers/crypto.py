"""Confidential contact details at rest: Fernet with key rotation, and keyed hashes for lookup."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_RECEIPT_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


class Crypto:
    """`keys` newest first: new data is sealed with the first, any of them opens it."""

    def __init__(self, keys: tuple[str, ...], secret_key: str) -> None:
        fernets = [Fernet(k.encode()) for k in keys]
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        self._hash_key = hashlib.sha256(b"aduan-lookup\x00" + secret_key.encode()).digest()

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("Sealed value cannot be opened with any configured key.") from None

    def rotate(self, token: str) -> str:
        """The same value sealed with the newest key; ValueError if no key opens it."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ValueError("Sealed value cannot be opened with any configured key.") from None

    def is_current(self, token: str) -> bool:
        """Whether the newest key alone opens `token`, so rotating it again is needless.
        Fernet checks its HMAC before decrypting: a token of another key fails fast."""
        try:
            self._newest.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def lookup_hash(self, value: str) -> str:
        """Find a reporter by address without keeping the address readable."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()

    def check_receipt(self, receipt: str, expected_hash: str) -> bool:
        return hmac.compare_digest(self.lookup_hash(normalize_receipt(receipt)), expected_hash)


def generate_key() -> str:
    """A fresh key for ADUAN_ENCRYPTION_KEY (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode()


def new_receipt() -> str:
    code = "".join(secrets.choice(_RECEIPT_ALPHABET) for _ in range(12))
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"


def normalize_receipt(receipt: str) -> str:
    compact = "".join(ch for ch in receipt.upper() if ch.isalnum())
    return f"{compact[:4]}-{compact[4:8]}-{compact[8:]}" if len(compact) == 12 else compact

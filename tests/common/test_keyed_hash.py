"""KeyedHash (HMAC from precomputed key states) computes exactly keyed_hex: the pseudonyms and sale identities
already in a warehouse stay what they are."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.crypto import KeyedHash, keyed_hex


@given(st.binary(min_size=0, max_size=130), st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_keyed_hash_is_keyed_hex(key, message):
    assert KeyedHash(key).hex(message) == keyed_hex(key, message)
    assert KeyedHash(key).digest16(message.encode()).hex() == keyed_hex(key, message)

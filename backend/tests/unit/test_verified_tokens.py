"""The cache of verified tokens: bounded, and never used past a token's expiry."""

from __future__ import annotations

from src.core.security import VerifiedTokens


def test_a_remembered_token_gives_its_subject_until_it_expires() -> None:
    cache = VerifiedTokens(capacity=10)
    cache.remember("token", "alice", valid_until=100.0)

    assert cache.subject_of("token", now=99.9) == "alice"
    assert cache.subject_of("token", now=100.0) is None
    assert cache.subject_of("token", now=50.0) is None  # an expired entry is gone


def test_the_least_recently_used_token_leaves_first() -> None:
    cache = VerifiedTokens(capacity=2)
    cache.remember("a", "alice", valid_until=100.0)
    cache.remember("b", "bob", valid_until=100.0)
    cache.subject_of("a", now=1.0)
    cache.remember("c", "carol", valid_until=100.0)

    assert cache.subject_of("a", now=1.0) == "alice"
    assert cache.subject_of("b", now=1.0) is None
    assert cache.subject_of("c", now=1.0) == "carol"

"""DeskOrgCache (cachetools underneath): one org per user and Desk host, for the grant it
was found for, bounded in size."""

from __future__ import annotations

from notifier.notifications import DeskOrgCache

HOST = "https://desk.zoho.com"


def test_a_new_grant_replaces_the_old_ones_org_and_drop_takes_only_its_own() -> None:
    cache = DeskOrgCache(60)
    cache.put("ann", HOST, "grant-1", "111")
    assert cache.get("ann", HOST, "grant-1") == "111"
    cache.put("ann", HOST, "grant-2", "222")
    assert cache.get("ann", HOST, "grant-1") is None
    cache.drop("ann", HOST, "grant-1")  # not the current grant: kept
    assert cache.get("ann", HOST, "grant-2") == "222"
    cache.drop("ann", HOST, "grant-2")
    assert cache.get("ann", HOST, "grant-2") is None


def test_no_ttl_keeps_nothing_and_the_cap_drops_the_least_recently_used() -> None:
    off = DeskOrgCache(0)
    off.put("ann", HOST, "g", "1")
    assert off.get("ann", HOST, "g") is None
    small = DeskOrgCache(60, max_entries=2)
    small.put("a", HOST, "g", "1")
    small.put("b", HOST, "g", "2")
    assert small.get("a", HOST, "g") == "1"  # used: "b" is now the oldest
    small.put("c", HOST, "g", "3")
    assert [small.get(u, HOST, "g") for u in "abc"] == ["1", None, "3"]

"""Group commit: many producers, one transaction per window, each gets its own result."""
from __future__ import annotations

import asyncio


from store.committer import GroupCommitter
from store.queue import BacklogFull, Quota, Store, StoreOptions


def test_concurrent_producers_share_commits_and_each_gets_its_own_seqs(tmp_path):
    store = Store(tmp_path, sinks=["odoo"])

    async def go():
        committer = GroupCommitter(store, window=0.01)

        async def producer(p: int):
            out = []
            for i in range(20):
                r = await committer.append([{"id": f"evt_{p}_{i}", "kind": "production", "data": {}}],
                                           {f"rule/{p}": str(i).encode()})
                out.extend(r.seqs)
            return out

        results = await asyncio.gather(*(producer(p) for p in range(10)))
        await committer.close()
        return committer, results

    committer, results = asyncio.run(go())
    all_seqs = sorted(s for r in results for s in r)
    assert all_seqs == list(range(1, 201))
    assert all(r == sorted(r) for r in results)  # each producer's events keep their order
    assert committer.requests == 200 and committer.commits < 200  # shared transactions happened
    assert store.get_state("rule/3") == b"19"


def test_a_refused_group_tells_every_producer(tmp_path):
    store = Store(tmp_path, sinks=["odoo"],
                  options=StoreOptions(quotas={"business": Quota(max_events=1), "telemetry": Quota()}))

    async def go():
        committer = GroupCommitter(store, window=0.05)
        first = await committer.append([{"id": "a", "kind": "production", "data": {}}])
        outcomes = await asyncio.gather(
            committer.append([{"id": "b", "kind": "production", "data": {}}]),
            committer.append([{"id": "c", "kind": "production", "data": {}}]), return_exceptions=True)
        await committer.close()
        return first, outcomes

    first, outcomes = asyncio.run(go())
    assert first.seqs == [1]
    assert all(isinstance(o, BacklogFull) for o in outcomes)
    assert store.stored_count() == 1

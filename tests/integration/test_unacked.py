"""wa_tasks.infra.redis_client.unacked against kombu's Redis transport on a real Redis: the tags it
reads are the ones kombu restores by, so a message a dead consumer held goes back on its queue."""

from __future__ import annotations

from kombu import Connection

from wa_tasks.infra.redis_client import unacked


def test_a_held_message_is_listed_with_its_route_and_restored_by_its_tag(redis_clean: str) -> None:
    # Given a consumer that took one message from queue "wa.s.wa-1" and did not acknowledge it
    with Connection(redis_clean, transport_options={"visibility_timeout": 3600}) as conn:
        channel = conn.default_channel
        queue = conn.SimpleQueue("wa.s.wa-1")
        queue.put({"task": "wa.deliver"})
        held = channel.basic_get("wa.s.wa-1", no_ack=False)
        assert held is not None and channel.client.llen("wa.s.wa-1") == 0

        # When its bookkeeping is read
        entries = list(unacked(channel))

        # Then the entry names the message's tag and queue
        assert entries == [(held.delivery_tag, "wa.s.wa-1", "wa.s.wa-1")]
        # And restoring by that tag puts the message back on its queue
        channel.qos.restore_by_tag(entries[0][0])
        assert channel.client.llen("wa.s.wa-1") == 1
        assert list(unacked(channel)) == []
        queue.close()

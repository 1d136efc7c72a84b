"""Malformed `hris_sftp` connection settings are refused at once, naming the problem (issue 22, point 10):
the provider would otherwise misread them and fail with errors that look transient."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time

import asyncssh
import pytest

from turnover_signals.errors import SourceRefusedError
from turnover_signals.sources.sftp_hris import (
    _ChunkChannel,
    check_connection_extras,
    check_host_key,
    run_with_bounded_cleanup,
)


def public_key(algorithm: str) -> str:
    return asyncssh.generate_private_key(algorithm).export_public_key().decode("ascii").strip()


@pytest.mark.parametrize("algorithm", ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
def test_a_typed_public_key_line_is_accepted(algorithm):
    check_host_key("hris_sftp", public_key(algorithm))  # with its trailing comment, as ssh-keyscan prints it


def test_a_bare_rsa_key_is_accepted_as_the_provider_reads_it():
    check_host_key("hris_sftp", public_key("ssh-rsa").split()[1])


def test_an_ed25519_key_without_its_type_is_refused_naming_the_fix():
    bare = public_key("ssh-ed25519").split()[1]
    with pytest.raises(SourceRefusedError) as refused:
        check_host_key("hris_sftp", bare)
    message = str(refused.value)
    assert message.startswith("SFTP connection 'hris_sftp': malformed connection settings:")
    assert "ssh-ed25519 key without its key type" in message and "`ssh-ed25519 <base64>`" in message
    assert "docs/runbook/hris.md#runbook-sftp-host-key" in message


@pytest.mark.parametrize(
    ("host_key", "problem"),
    [
        ("ssh-ed25519 not-base64!", "its key data is not the base64 of a key"),
        ("ssh-ed25519", "its key data is not the base64 of a key"),
        (
            f"ssh-ed25519 {base64.b64encode(b'hello world').decode()}",
            "its key data is not the base64 of a key",
        ),
        ("", "is empty or not text"),
        (42, "is empty or not text"),
    ],
    ids=["not base64", "type only", "base64 of no key", "empty", "a number"],
)
def test_a_host_key_that_is_no_key_is_refused(host_key, problem):
    with pytest.raises(SourceRefusedError, match=problem):
        check_host_key("hris_sftp", host_key)


def test_a_key_type_that_contradicts_the_key_data_is_refused():
    key_data = public_key("ssh-ed25519").split()[1]
    with pytest.raises(SourceRefusedError, match="says ssh-rsa, but its key data is an ssh-ed25519 key"):
        check_host_key("hris_sftp", f"ssh-rsa {key_data}")


def test_a_truncated_key_is_refused():
    key_type, key_data = public_key("ssh-ed25519").split()[:2]
    truncated = base64.b64encode(base64.b64decode(key_data)[:-8]).decode()
    with pytest.raises(SourceRefusedError, match="is not a valid ssh-ed25519 key"):
        check_host_key("hris_sftp", f"{key_type} {truncated}")


def test_a_pinned_key_with_the_check_switched_off_is_refused():
    with pytest.raises(SourceRefusedError, match="`no_host_key_check` is true"):
        check_connection_extras(
            "hris_sftp", {"host_key": public_key("ssh-ed25519"), "no_host_key_check": "true"}
        )


@pytest.mark.parametrize("timeout", ["ten", "0", -5])
def test_a_connect_timeout_that_is_no_positive_number_is_refused(timeout):
    with pytest.raises(SourceRefusedError, match="`conn_timeout` must be a positive number"):
        check_connection_extras("hris_sftp", {"conn_timeout": timeout})


def test_usual_extras_pass():
    check_connection_extras(
        "hris_sftp",
        {"host_key": public_key("ssh-ed25519"), "no_host_key_check": False, "conn_timeout": "10"},
    )


def run_within_ten_seconds(coroutine):
    """What run_with_bounded_cleanup(coroutine, 0.2) returned, run in a thread given ten seconds (a hang
    fails the test instead of stopping the suite)."""
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(value=run_with_bounded_cleanup(coroutine, 0.2)), daemon=True
    )
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive(), "still running after 10 s"
    return outcome["value"]


async def keeps_running():
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            continue  # what a misbehaving library task does; asyncio.run would wait for it forever


async def block_in_the_executor(release: threading.Event) -> None:
    """Leave a call running in the loop's executor until `release` (a host name lookup, a key read)."""
    blocked = asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(blocked), 0.05)


def test_a_stream_returns_even_when_a_library_task_ignores_its_cancellation(caplog):
    async def stream():
        asyncio.get_running_loop().create_task(keeps_running())
        await asyncio.sleep(0)
        return "streamed"

    with caplog.at_level("WARNING", logger="turnover_signals.sources.sftp_hris"):
        assert run_within_ten_seconds(stream()) == "streamed"
    assert "1 asyncssh task(s) still running" in caplog.text and "keeps_running" in caplog.text


def test_a_stream_returns_even_when_a_call_in_its_executor_blocks(caplog):
    """Python 3.11's loop.shutdown_default_executor would join the blocked call's thread without end."""
    release = threading.Event()

    async def stream():
        await block_in_the_executor(release)
        return "streamed"

    try:
        with caplog.at_level("WARNING", logger="turnover_signals.sources.sftp_hris"):
            assert run_within_ten_seconds(stream()) == "streamed"
        assert "a call in the stream's executor still running" in caplog.text
    finally:
        release.set()


def test_the_cleanup_bound_holds_for_stuck_tasks_and_blocked_executor_calls_together(caplog):
    """One bound for the whole cleanup: the executor's calls get what the pending tasks left of it, not a
    bound of their own (which made the cleanup last up to twice as long)."""
    release = threading.Event()

    async def stream():
        asyncio.get_running_loop().create_task(keeps_running())
        await block_in_the_executor(release)
        return "streamed"

    try:
        with caplog.at_level("WARNING", logger="turnover_signals.sources.sftp_hris"):
            started = time.monotonic()
            assert run_with_bounded_cleanup(stream(), 2.0) == "streamed"
            elapsed = time.monotonic() - started
        assert "1 asyncssh task(s) still running" in caplog.text
        assert "a call in the stream's executor still running" in caplog.text
        assert 2.0 <= elapsed < 3.0  # two bounds in a row would be 4 s
    finally:
        release.set()


def test_a_stream_raises_what_its_coroutine_raised_after_cancelling_its_tasks():
    cancelled = []

    async def background():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def stream():
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        raise EOFError("received 10 of 20 bytes")

    with pytest.raises(EOFError, match="10 of 20"):
        run_with_bounded_cleanup(stream(), 5)
    assert cancelled == [True]


def test_the_end_of_a_stream_reaches_a_consumer_slower_than_the_transfer():
    """The transfer ends while the channel is full (the consumer, COPYing, is behind): the end of the file
    must wait for room like a chunk. Dropped, it left the consumer waiting for it and the task hung."""
    channel = _ChunkChannel(max_chunks=2)
    reading = threading.Event()
    received = []

    def consume():
        reading.wait(5)  # behind the transfer: the channel is full before the first read
        received.extend(channel)
        return len(received)

    async def transfer():
        consumer = asyncio.get_running_loop().run_in_executor(None, consume)
        for number in range(2):
            await channel.put(b"chunk %d" % number, consumer)
        closing = asyncio.ensure_future(channel.close(consumer))
        await asyncio.sleep(0.1)  # the last chunk is in and the channel is still full
        reading.set()
        await closing
        return await asyncio.wait_for(consumer, 5)

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(value=asyncio.run(transfer())), daemon=True)
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive(), "the consumer is still waiting for the end of the file"
    assert outcome == {"value": 2} and received == [b"chunk 0", b"chunk 1"]

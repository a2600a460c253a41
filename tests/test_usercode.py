"""Blocking user code on daemon threads: the thread limit holds, abandoned threads included."""

from __future__ import annotations

import threading

import anyio

from runtime.usercode import run_in_thread, thread_limiter


async def test_an_abandoned_thread_keeps_its_place_until_it_finishes() -> None:
    """Bug: the limiter's token was released when the caller stopped waiting (a timeout),
    while the thread kept running, so "at most 40 threads at once" was false: a step
    timing out again and again started a new thread each time. Now the token is held
    until the thread's function returns."""
    limiter = thread_limiter()
    before = limiter.borrowed_tokens
    started, release = threading.Event(), threading.Event()

    def blocks() -> str:
        started.set()
        release.wait(10)
        return "late"

    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_in_thread, blocks)
            while not started.is_set():  # noqa: ASYNC110 - a thread's flag, bounded above
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()  # the caller gives up: the thread is abandoned
    assert not scope.cancelled_caught
    assert limiter.borrowed_tokens == before + 1  # the running thread still counts
    release.set()
    with anyio.fail_after(5):
        while limiter.borrowed_tokens != before:  # noqa: ASYNC110 - set by the thread's end
            await anyio.sleep(0.001)


async def test_a_call_returns_and_raises_what_the_function_did() -> None:
    assert await run_in_thread(lambda: 41 + 1) == 42

    def fails() -> None:
        raise KeyError("missing")

    limiter = thread_limiter()
    try:
        await run_in_thread(fails)
    except KeyError as exc:
        assert exc.args == ("missing",)
    else:
        raise AssertionError("the KeyError was not raised")
    assert limiter.borrowed_tokens == 0

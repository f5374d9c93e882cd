"""Stream helpers for testbenches in Amaranth's simulator.

``stream_put`` and ``stream_get`` follow the helpers in Amaranth's ``lib.stream`` documentation,
with a delay knob: before each transfer the producer holds ``valid`` low (or the consumer holds
``ready`` low) for a random number of cycles drawn from ``rng``, so that every stream test also
exercises gaps and back-pressure.
"""

import random


async def _idle(ctx, rng, max_delay):
    if rng is not None and max_delay > 0:
        for _ in range(rng.randint(0, max_delay)):
            await ctx.tick()


async def stream_put(ctx, stream, payload, *, rng=None, max_delay=0):
    """Send one ``payload`` on ``stream``, after a random gap of up to ``max_delay`` cycles.

    ``payload`` is a value of the payload's shape, or an ``int`` holding its packed bits.
    """
    await _idle(ctx, rng, max_delay)
    ctx.set(stream.valid, 1)
    target = stream.payload
    if isinstance(payload, int) and hasattr(target, "as_value"):
        target = target.as_value()  # a packed word for a structured payload
    ctx.set(target, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, max_delay=0):
    """Receive one payload from ``stream``, holding ``ready`` low for up to ``max_delay`` cycles."""
    await _idle(ctx, rng, max_delay)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def seeded(seed):
    """A ``random.Random`` for stall patterns, seeded so a failure reproduces."""
    return random.Random(seed)

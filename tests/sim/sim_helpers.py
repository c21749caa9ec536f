"""Run the platform loop in-process (no Kafka, no HTTP) and collect what it wrote."""
from __future__ import annotations

from recstream.sim.options import SimOptions
from recstream.sim.recommenders import Recommender
from recstream.sim.sinks import MemorySink, MemoryTruth
from recstream.sim.traffic import Platform
from recstream.sim.world import World


async def simulate(world: World, options: SimOptions, recommender: Recommender, *,
                   duration: float = 3600.0, server: str | None = None) -> tuple[MemorySink, MemoryTruth, Platform]:
    sink, truth = MemorySink(), MemoryTruth()
    platform = Platform(world, options.replace(duration=duration, fast=True), recommender, [sink],
                        truth=truth, server=server)
    await platform.run()
    return sink, truth, platform

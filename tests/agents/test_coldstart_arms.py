"""A cold-start experiment: the "off" arm ignores the self-description (prior only)."""
from __future__ import annotations

from models.experiments.spec import ExperimentSpec, parse_arm
from recstream.experiments import ExperimentBook
from recstream.records import UserProfile
from tests.agents.test_coldstart_service import (api_port, create_accounts, fetch_all,  # noqa: F401
                                                 settings, setup, sign_up, user_api, world)


async def test_the_off_arm_gets_the_prior_and_the_on_arm_the_fold_in(
        rt, recorder, make_event, world, api_port):  # noqa: F811
    writer, cold = await setup(rt, world, make_event)
    book = ExperimentBook()
    book.apply(ExperimentSpec("desc", "coldstart", (parse_arm("on=describe:on"),
                                                    parse_arm("off=describe:off")), (1.0, 1.0)))
    cold.describes = book.describes
    new = sign_up(world, 40)
    async with user_api(world, api_port):
        await create_accounts(rt, make_event, writer, new)
        sent = await fetch_all(cold, recorder, len(new))
    profiles = [UserProfile.loads(value, serializer="json") for _, value in sent]
    off = [p for p in profiles if not book.describes(p.user)]
    on = [p for p in profiles if book.describes(p.user)]
    assert len(off) >= 8 and len(on) >= 8
    assert all(p.source in ("prior", "none") and not p.named for p in off)
    assert sum(p.source == "foldin" for p in on) >= 0.7 * len(on)

"""Process plumbing: a started service tunes the garbage collector."""

import gc

from core.runtime import GC_YOUNG_THRESHOLD, settle_gc


def test_a_started_service_freezes_what_it_holds_and_collects_less_often() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        settle_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

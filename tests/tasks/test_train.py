"""The training task's fingerprints (its "already done" records and registry tags)."""

import dataclasses

from inrcore.sdf.settings import IsoPointsConfig, TrainConfig
from inrcore.settings import config_to_dict, fingerprint
from tasks.sdf.train import EXECUTION_ONLY, training_fingerprint


def test_isopoint_settings_count_only_when_isopoints_are_on():
    base = TrainConfig()
    # Off, the fingerprint is the one a config without the isopoints field had.
    before = {k: v for k, v in config_to_dict(base).items() if k not in EXECUTION_ONLY and k != "isopoints"}
    assert training_fingerprint("s", base) == fingerprint("field", "s", before)
    off_other = dataclasses.replace(base, isopoints=IsoPointsConfig(enabled=False, n_points=123))
    assert training_fingerprint("s", off_other) == training_fingerprint("s", base)
    on = dataclasses.replace(base, isopoints=IsoPointsConfig(enabled=True))
    assert training_fingerprint("s", on) != training_fingerprint("s", base)
    on_other = dataclasses.replace(base, isopoints=IsoPointsConfig(enabled=True, n_points=123))
    assert training_fingerprint("s", on_other) != training_fingerprint("s", on)

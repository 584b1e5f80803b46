"""Change detectors on seeded synthetic per-request streams: quiet while stationary, found after a change."""

import json

import numpy as np
import pytest

from amploop.errors import UsageError
from amploop.monitor.stream import ChangeMonitor, StreamAlarm, detect_changes

CHANGE_AT = 3000
DETECTORS = ["adwin", "page_hinkley"]


def _errors(seed: int, before: float, after: float, n: int = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(CHANGE_AT) < before, rng.random(n - CHANGE_AT) < after].astype(float)


def _confidence(seed: int, before: tuple[float, float], after: tuple[float, float], n: int = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.beta(*before, CHANGE_AT), rng.beta(*after, n - CHANGE_AT)]


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_rise_in_errors_is_found_after_it_happens_and_not_before(detector, seed):
    alarms = detect_changes(_errors(seed, 0.1, 0.3), detector=detector, stream="error")
    assert alarms, "the error rate tripled and nothing fired"
    assert all(a.index >= CHANGE_AT for a in alarms)
    first = alarms[0]
    assert first.index < CHANGE_AT + 600  # a delay of a few hundred requests
    assert abs(first.change_start - CHANGE_AT) <= 150  # where the change began, not where it was noticed
    assert first.change_start <= first.index
    assert first.value_before == pytest.approx(0.1, abs=0.04)  # a mean of 500 values: 3 standard errors
    # a mean of the 100-200 values up to the alarm, which detectors raise after a burst: a wider margin
    assert first.value_after == pytest.approx(0.3, abs=0.12)


@pytest.mark.parametrize("detector", DETECTORS)
def test_stationary_streams_raise_no_alarm(detector):
    rng = np.random.default_rng(42)
    assert detect_changes(rng.random(20_000) < 0.1, detector=detector, stream="error") == []
    assert detect_changes(rng.beta(8, 2, 20_000), detector=detector, stream="confidence") == []
    assert detect_changes(rng.beta(8, 2, 20_000), detector=detector, stream="confidence", direction="both") == []


@pytest.mark.parametrize("detector", DETECTORS)
def test_a_drop_in_confidence_is_found_and_a_rise_is_not_reported(detector):
    drop = _confidence(5, (8, 2), (6, 3))  # mean 0.80, then 0.67
    alarms = detect_changes(drop, detector=detector, stream="confidence")
    assert alarms and alarms[0].index >= CHANGE_AT
    assert alarms[0].value_after < alarms[0].value_before
    rise = _confidence(6, (6, 3), (8, 2))
    assert detect_changes(rise, detector=detector, stream="confidence") == []  # better confidence is no alarm
    found_up = detect_changes(rise, detector=detector, stream="confidence", direction="up")
    assert found_up and found_up[0].value_after > found_up[0].value_before
    assert detect_changes(rise, detector=detector, stream="confidence", direction="both")
    # a falling error rate is good news: not reported on a stream named "error"
    assert detect_changes(_errors(7, 0.3, 0.1), detector=detector, stream="error") == []


def test_page_hinkley_takes_rivers_parameters():
    drop = _confidence(8, (8, 2), (7.5, 2.5))  # mean 0.80, then 0.75: slow for the default threshold of 50
    default = detect_changes(drop, detector="page_hinkley")
    quicker = detect_changes(drop, detector="page_hinkley", threshold=20)
    assert quicker and quicker[0].index >= CHANGE_AT
    assert not default or default[0].index > quicker[0].index


def test_monitor_fed_window_by_window_matches_one_pass_and_keeps_streams_apart():
    errors = _errors(9, 0.05, 0.25)
    confidence = _confidence(9, (8, 2), (6, 3))
    one_pass = detect_changes(errors, stream="error") + detect_changes(confidence, stream="confidence")
    monitor = ChangeMonitor()
    windowed: list[StreamAlarm] = []
    for start in range(0, len(errors), 500):  # one window after another, the two streams interleaved
        windowed += monitor.update_many("error", errors[start : start + 500])
        windowed += monitor.update_many("confidence", confidence[start : start + 500])
    assert sorted(windowed, key=lambda a: (a.stream, a.index)) == sorted(one_pass, key=lambda a: (a.stream, a.index))
    assert {a.stream for a in windowed} == {"error", "confidence"}
    assert monitor.seen == {"error": 6000, "confidence": 6000}
    assert monitor.direction("error") == "up" and monitor.direction("confidence") == "down"
    assert ChangeMonitor(directions={"latency": "up"}).direction("latency") == "up"
    assert monitor.direction("latency") == "both"


def test_update_returns_the_alarm_on_the_value_that_raised_it():
    monitor = ChangeMonitor(detector="page_hinkley")
    values = _errors(10, 0.1, 0.4)
    returned = [(i, monitor.update("error", v)) for i, v in enumerate(values)]
    fired = [(i, alarm) for i, alarm in returned if alarm is not None]
    assert fired and all(alarm.index == i for i, alarm in fired)
    assert fired[0][1].detector == "page_hinkley" and fired[0][1].stream == "error"


def test_alarms_are_json_ready():
    alarm = detect_changes(_errors(11, 0.1, 0.3), stream="error")[0]
    as_dict = alarm.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert [type(as_dict[k]) for k in ("index", "change_start", "value_before", "value_after")] == [
        int,
        int,
        float,
        float,
    ]


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="did you mean adwin"):
        detect_changes([0.5], detector="adwn")
    with pytest.raises(UsageError, match="direction 'sideways'"):
        detect_changes([0.5], direction="sideways")
    with pytest.raises(UsageError, match="instead of mode="):
        ChangeMonitor(detector="page_hinkley", mode="up")
    with pytest.raises(UsageError, match="page_hinkley does not accept"):
        ChangeMonitor(detector="page_hinkley", treshold=20)
    with pytest.raises(UsageError, match="value 2 of stream 'confidence' is nan"):
        detect_changes([0.9, 0.8, float("nan")])
    with pytest.raises(UsageError, match="not a number"):
        detect_changes(["high"])

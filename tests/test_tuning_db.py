"""The tuning database is keyed on the device (kind and normalised name), not on the
driver version: a driver update keeps the tuned entries and warns, naming both versions."""
import json
import warnings
from collections import namedtuple

import pytest

from clconv import tuning
from clconv.device import DeviceKind

Profile = namedtuple("Profile", "kind device_name driver_version limits_name label")
ENTRY = {"algo": "im2col", "params": {"TM": 2, "TN": 4}}


def _profile(driver="1.0", name="VideoCore IV GPU", kind=DeviceKind.VC4CL):
    return Profile(kind, name, driver, "", "test:" + name)


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path))
    tuning.forget_cache()
    yield tmp_path
    tuning.forget_cache()


def _load(profile):
    tuning.forget_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = tuning.load(profile)
    return entries, [str(w.message) for w in caught
                     if issubclass(w.category, tuning.DriverChangedWarning)]


def test_the_key_is_the_kind_and_the_normalised_name():
    key = tuning.device_key(_profile())
    assert tuning.device_key(_profile(name="  videocore  IV\tGPU ")) == key
    assert tuning.device_key(_profile(driver="0.4.9")) == key
    assert tuning.device_key(_profile(kind=DeviceKind.POCL_CPU)) != key
    assert tuning.device_key(_profile(name="V3D 4.2")) != key


def test_a_driver_update_keeps_the_entries_and_warns_naming_both_versions(db):
    tuning.save(_profile("1.0"), {"layer-a": ENTRY})
    assert _load(_profile("1.0")) == ({"layer-a": {**ENTRY, "driver": "1.0"}}, [])
    entries, warned = _load(_profile("2.0-rc1"))
    assert entries["layer-a"]["algo"] == "im2col"
    assert len(warned) == 1 and "'1.0'" in warned[0] and "'2.0-rc1'" in warned[0]
    assert tuning.lookup(_profile("2.0-rc1"), _Geo(), "forward") is None  # no crash
    # retuning the layer under the new driver ends the warning; one file throughout
    tuning.save(_profile("2.0-rc1"), {"layer-a": ENTRY})
    assert _load(_profile("2.0-rc1"))[1] == []
    assert [p.name for p in db.glob("*.json")] == [tuning.db_path(_profile()).name]
    data = json.loads(tuning.db_path(_profile()).read_text())
    assert data["driver"] == "2.0-rc1" and data["entries"]["layer-a"]["driver"] == "2.0-rc1"


def test_a_partly_retuned_database_still_warns_about_the_rest(db):
    tuning.save(_profile("1.0"), {"layer-a": ENTRY, "layer-b": ENTRY})
    tuning.save(_profile("2.0"), {"layer-a": ENTRY})
    entries, warned = _load(_profile("2.0"))
    assert set(entries) == {"layer-a", "layer-b"}
    assert len(warned) == 1 and "'1.0'" in warned[0] and "'2.0'" in warned[0]


def test_a_file_of_the_old_naming_is_still_read(db):
    profile = _profile("1.0")
    old = db / "videocore-iv-gpu__1.0.json"
    old.write_text(json.dumps({"schema": tuning.SCHEMA, "driver": "1.0",
                               "entries": {"layer-a": ENTRY}}))
    assert _load(profile) == ({"layer-a": ENTRY}, [])
    tuning.save(profile, {"layer-b": ENTRY})  # merged into the new file
    assert set(tuning._read_entries(tuning.db_path(profile))) == {"layer-a", "layer-b"}


class _Geo:
    N = C = H = W = K = kh = kw = Ho = Wo = groups = 1
    stride = dilation = (1, 1)
    pad_top = pad_left = 0

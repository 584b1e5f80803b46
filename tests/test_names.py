"""The one validator for names and references, as the CLI, the config and the Python API use it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amploop.config import load_config
from amploop.errors import ConfigError, UsageError
from amploop.names import MAX_VERSION, ModelRef, check_name, is_valid_name, parse_model_ref

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


@pytest.mark.parametrize("name", ["adult", "a", "A-1_b.c", "0", "x" * 128, "adult.v2"])
def test_valid_names(name):
    assert is_valid_name(name) and check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "/", "~", "-x", "_x", ".x", "a b", "x" * 129, "名前", "a\n", None, 3]
)
def test_invalid_names_are_usage_errors(name):
    assert not is_valid_name(name)
    with pytest.raises(UsageError, match="is not valid"):
        check_name(name)


def test_references_parse_into_name_version_alias():
    assert parse_model_ref("adult") == ModelRef("adult")
    assert parse_model_ref("adult:7") == ModelRef("adult", 7)
    assert parse_model_ref("adult@champion") == ModelRef("adult", alias="champion")
    assert str(parse_model_ref("adult@champion")) == "adult@champion"
    assert parse_model_ref(f"adult:{MAX_VERSION}").version == MAX_VERSION


@pytest.mark.parametrize(
    "ref",
    ["adult:99999999999999999999", "adult:0", "adult:-1", "adult:", "adult:x", "adult@", "@a", ":1", "a:1:2", "../x:1"]
    + ["a@b@c", "a@..", "x" * 129 + ":1", "adult:１"],
)
def test_malformed_references_are_usage_errors(ref):
    with pytest.raises(UsageError):
        parse_model_ref(ref)


def test_the_config_uses_the_same_rule():
    with pytest.raises(ConfigError, match=r"model.name \(from command line\): '\.\.' is not a valid model name"):
        load_config(None, environ={}, overrides={"model.name": ".."})
    assert load_config(None, environ={"AMPLOOP_MODEL__NAME": "123"}).model.name == "123"


def test_a_malformed_reference_exits_2_on_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(tmp_path / "h")
    for args in (["models", "show", "adult:99999999999999999999"], ["evaluate", "a b"], ["models", "lineage", "x@"]):
        done = subprocess.run([AMPLOOP, *args, "--json"], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == UsageError.exit_code, done.stderr
        assert json.loads(done.stdout)["error"] == "UsageError"
        assert len(done.stderr.strip().splitlines()) == 1

import pytest

from amploop.config import AmploopConfig, load_config
from amploop.errors import ConfigError


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg == AmploopConfig()
    assert cfg.train.precision == "auto" and cfg.serve.port == 8000


def test_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text(
        "project: {name: churn}\n"
        "data:\n  source: adult\n  slice_columns: [sex, race]\n"
        "train:\n  epochs: 7\n  batch_size: 64\n  seed: 1\n"
    )
    env = {"AMPLOOP_TRAIN__BATCH_SIZE": "128", "AMPLOOP_TRAIN__SEED": "2", "AMPLOOP_HOME": "/x"}
    cfg = load_config(path, environ=env, overrides={"train.seed": 3, "train.epochs": None})
    assert cfg.project.name == "churn"
    assert cfg.data.slice_columns == ["sex", "race"]
    assert cfg.train.epochs == 7  # file; the flag was not given
    assert cfg.train.batch_size == 128  # environment beats file
    assert cfg.train.seed == 3  # flag beats environment


def test_working_directory_file_is_read(tmp_path, monkeypatch):
    (tmp_path / "amploop.yaml").write_text("train: {epochs: 2}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}).train.epochs == 2


def test_unknown_key_in_file_names_its_path_and_the_file(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("train:\n  epochs: 3\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = info.value.message
    assert message.startswith(f"train.learning_rat (from {path}): unknown key")
    assert "learning_rate" in message  # the valid keys are listed


def test_unknown_section(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("trian: {epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"^trian \(from .*\): unknown key; valid keys here: data, "):
        load_config(path, environ={})


def test_wrong_type_names_field_and_environment_variable():
    with pytest.raises(ConfigError, match=r"^train\.epochs \(from AMPLOOP_TRAIN__EPOCHS\): "):
        load_config(None, environ={"AMPLOOP_TRAIN__EPOCHS": "many"})


def test_out_of_range_value_from_flags():
    with pytest.raises(ConfigError, match=r"^serve\.port \(from command line\): .*less than or equal to 65535"):
        load_config(None, environ={}, overrides={"serve.port": 70000})


def test_wrong_choice_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="'auto', 'fp32', 'tf32', 'bf16' or 'fp16'"):
        load_config(None, environ={"AMPLOOP_TRAIN__PRECISION": "fp8"})


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("train:\n  epochs: 3\n   batch_size: [\n")
    with pytest.raises(ConfigError, match=r"amploop.yaml line 3: not valid YAML"):
        load_config(path, environ={})


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("- train\n- serve\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path, environ={})


def test_a_given_path_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "amploop.yaml"
    path.write_text("")
    assert load_config(path, environ={}) == AmploopConfig()


def test_config_is_immutable():
    cfg = load_config(None, environ={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        cfg.train.epochs = 3  # type: ignore[misc]


def test_a_learning_rate_adam_cannot_step_with_is_a_config_error():
    # Adam steps by lr / (1 - beta1): 3.4e37 overflowed float32 inside torch instead of failing here
    with pytest.raises(ConfigError, match="train.learning_rate"):
        load_config(None, environ={}, overrides={"train.learning_rate": 3.4e37})

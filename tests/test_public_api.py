import subprocess
import sys

import amploop


def test_public_names_are_pinned():
    assert amploop.__all__ == [
        "__version__",
        "AliasMove",
        "AmploopConfig",
        "AmploopError",
        "ArtifactError",
        "ArtifactStore",
        "AuthError",
        "CiResult",
        "ConfigError",
        "Conflict",
        "CreatedKey",
        "DataConfig",
        "DataError",
        "Dataset",
        "DatasetNotFound",
        "DriftReport",
        "EvaluateConfig",
        "EvaluationOutcome",
        "FeatureEncoder",
        "FileDriftReport",
        "GateFailed",
        "InputTooLarge",
        "LabelEncoder",
        "ModelCard",
        "ModelConfig",
        "ModelNotFound",
        "MonitorConfig",
        "MonitorResult",
        "NotFound",
        "PermissionDenied",
        "PredictFileResult",
        "Predictor",
        "QualityError",
        "QualityReport",
        "Schema",
        "SchemaError",
        "ServeConfig",
        "Store",
        "StoreError",
        "TrainConfig",
        "TrainOutcome",
        "TrainingError",
        "Unavailable",
        "UsageError",
        "Workspace",
        "builtin_names",
        "check_quality",
        "create_api_key",
        "drift_files",
        "evaluate_version",
        "fingerprint",
        "from_numpy",
        "infer_schema",
        "load_builtin",
        "load_config",
        "load_model",
        "monitor_model",
        "open_dataset",
        "predict_file",
        "promote",
        "rollback",
        "run_ci",
        "train_version",
        "write_model_card",
    ]


def test_every_public_name_resolves():
    for name in amploop.__all__:
        assert getattr(amploop, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    try:
        amploop.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_package_pulls_in_no_heavy_stack():
    code = (
        "import sys, amploop, amploop.errors, amploop.workspace\n"
        "heavy = [m for m in ('torch', 'sqlalchemy', 'pandas', 'fastapi', 'pydantic') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_stage_functions_are_the_ones_the_cli_calls():
    from amploop.registry import aliases, cards, evaluations, loading, training

    assert amploop.train_version is training.train_version
    assert amploop.evaluate_version is evaluations.evaluate_version
    assert amploop.promote is aliases.promote and amploop.rollback is aliases.rollback
    assert amploop.write_model_card is cards.write_model_card
    assert amploop.load_model is loading.load_model
    from amploop.serve import auth, predict

    assert amploop.predict_file is predict.predict_file and amploop.create_api_key is auth.create_api_key
    from amploop.monitor import files, windows

    assert amploop.monitor_model is windows.monitor_model and amploop.drift_files is files.drift_files


def test_nothing_below_the_cli_imports_it():
    import ast
    from pathlib import Path

    root = Path(amploop.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if relative.parts[0] in ("cli", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{relative}: {n}" for n in names if n == "amploop.cli" or n.startswith("amploop.cli.")]
    assert offenders == []

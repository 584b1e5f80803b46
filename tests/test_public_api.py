import subprocess
import sys

import amploop


def test_public_names_are_pinned():
    assert amploop.__all__ == [
        "__version__",
        "AmploopConfig",
        "AmploopError",
        "ArtifactError",
        "ArtifactStore",
        "AuthError",
        "ConfigError",
        "DataError",
        "Dataset",
        "DatasetNotFound",
        "FeatureEncoder",
        "GateFailed",
        "InputTooLarge",
        "LabelEncoder",
        "ModelNotFound",
        "NotFound",
        "PermissionDenied",
        "QualityError",
        "Schema",
        "SchemaError",
        "Store",
        "StoreError",
        "TrainingError",
        "Workspace",
        "builtin_names",
        "fingerprint",
        "from_numpy",
        "infer_schema",
        "load_builtin",
        "load_config",
        "open_dataset",
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

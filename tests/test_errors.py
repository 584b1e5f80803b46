import amploop.errors as errors
from amploop.errors import AmploopError


def _all_error_classes():
    exported = [getattr(errors, n) for n in errors.__all__]
    classes = [e for e in exported if isinstance(e, type)]
    assert len(classes) == len(exported) - 1  # and close_matches, the hint helper
    return classes


def test_every_error_is_an_amploop_error_with_exit_code_and_status():
    for cls in _all_error_classes():
        assert issubclass(cls, AmploopError)
        assert isinstance(cls.exit_code, int)
        assert cls.exit_code != 2 or cls is errors.UsageError  # 2 is a usage error: the parser's or UsageError
        assert 400 <= cls.http_status < 600


def test_leaf_classes_have_distinct_exit_codes_except_not_found_family():
    codes = {}
    for cls in _all_error_classes():
        if issubclass(cls, errors.NotFound) and cls is not errors.NotFound:
            assert cls.exit_code == errors.NotFound.exit_code
            continue
        assert cls.exit_code not in codes, (cls, codes.get(cls.exit_code))
        codes[cls.exit_code] = cls


def test_client_errors_are_4xx():
    assert errors.ConfigError.http_status == 400
    assert errors.UsageError.http_status == 400 and issubclass(errors.UsageError, errors.ConfigError)
    assert errors.SchemaError.http_status == 422
    assert errors.ModelNotFound.http_status == 404
    assert errors.AuthError.http_status == 401
    assert errors.PermissionDenied.http_status == 403
    assert errors.InputTooLarge.http_status == 413


def test_to_dict_carries_message_and_details():
    err = errors.ModelNotFound("no model 'adlt'", close_matches=["adult"])
    assert err.to_dict() == {
        "error": "ModelNotFound",
        "message": "no model 'adlt'",
        "details": {"close_matches": ["adult"]},
    }
    assert str(err) == "no model 'adlt'"

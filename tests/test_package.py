import hiercon


def test_version_is_defined_once():
    from importlib.metadata import version

    assert hiercon.__version__ == version("hiercon")


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        hiercon.no_such_name  # noqa: B018

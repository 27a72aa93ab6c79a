import hiercon


def test_version_is_defined_once():
    from importlib.metadata import version

    assert hiercon.__version__ == version("hiercon")


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        hiercon.no_such_name  # noqa: B018


def test_import_is_light_and_exports_load_on_first_use():
    import subprocess
    import sys

    code = (
        "import sys, hiercon\n"
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'import hiercon is heavy'\n"
        "assert 'LabelTaxonomy' in dir(hiercon) and 'LabelTaxonomy' not in vars(hiercon)\n"
        "taxonomy_class = hiercon.LabelTaxonomy\n"
        "assert vars(hiercon)['LabelTaxonomy'] is taxonomy_class\n"
        "import hiercon.training\n"
        "assert 'hiercon.training.classifier_trainer' not in sys.modules\n"
        "assert hiercon.ClassifierTrainer.__module__ == 'hiercon.training.classifier_trainer'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_package_export_resolves():
    import importlib

    for package in ("hiercon", "hiercon.losses", "hiercon.hub", "hiercon.metrics", "hiercon.modeling",
                    "hiercon.taxonomy", "hiercon.training"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
            assert name in dir(module), f"{package}.{name} missing from dir()"

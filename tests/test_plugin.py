"""The plugin as users run it: pytester sessions (fixture, loading, markers)."""

import sys

import pytest


def test_weight_tracker_fixture_in_a_user_suite(user_project):
    user_project.makepyfile(
        test_user="""
        from usermodels import make_model, X, Y
        from pytest_kerasfreeze import Snapshot, WeightDiff

        def test_watch(weight_tracker):
            model = make_model()
            with weight_tracker.watch(model) as d:
                model.fit(X, Y, verbose=0)
            assert isinstance(d, WeightDiff)
            assert d.by_submodel() == {"base": (0, 2), "base/base_dense": (0, 2), "head": (2, 2)}

        def test_snapshot(weight_tracker):
            model = make_model()
            snap = weight_tracker.snapshot(model, "head")
            assert isinstance(snap, Snapshot) and len(snap) == 2

        def test_fresh_per_test(weight_tracker):
            assert weight_tracker.records == []
        """
    )
    result = user_project.runpytest()
    result.assert_outcomes(passed=3)


def test_failure_output_shows_the_report(user_project):
    user_project.makepyfile(
        test_user="""
        from usermodels import make_model, X, Y
        from pytest_kerasfreeze import assert_frozen

        def test_head_frozen():
            model = make_model()
            with assert_frozen(model, "head"):
                model.fit(X, Y, verbose=0)
        """
    )
    result = user_project.runpytest("--assert=plain")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FreezeAssertionError: assert_frozen failed: 2 of 2 weights of 'head' moved "
            "in model 'clf'",
            "E*Expected: no weight of 'head' moves (exact: any change of value counts)",
            "E*Mismatched weights: 2 / 2 (100.0%)",
            "E*head/kernel*(4, 1)*float32*",
        ]
    )
    # the traceback stops at the user's line, not inside the plugin
    result.stdout.fnmatch_lines(['*with assert_frozen(model, "head"):*'])
    assert "checks.py" not in result.stdout.str()


def test_markers_are_registered_for_strict_markers(user_project):
    user_project.makepyfile(
        test_user="""
        import pytest
        from usermodels import make_model, X, Y
        from pytest_kerasfreeze import assert_frozen

        @pytest.mark.frozen("base")
        @pytest.mark.trains("head")
        def test_marked():
            model = make_model()
            assert_frozen(model, "base", x=X, y=Y)
        """
    )
    result = user_project.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)
    markers = user_project.runpytest("--markers")
    markers.stdout.fnmatch_lines(
        [
            "@pytest.mark.frozen(*layers, exclude=(), by=None, atol=0.0, rtol=0.0, "
            "optimizer_state=False):*",
            "@pytest.mark.trains(*layers, exclude=(), atol=0.0, rtol=0.0):*",
            "@pytest.mark.trains_only(*layers, allow=(), exclude=(), atol=0.0, rtol=0.0):*",
        ]
    )


def test_p_kerasfreeze_works_with_autoload_disabled(user_project, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    user_project.makepyfile(
        test_user="""
        import pytest
        from usermodels import make_model, X, Y

        @pytest.mark.frozen("base")
        def test_watch(weight_tracker):
            model = make_model()
            with weight_tracker.watch(model, "base") as d:
                model.fit(X, Y, verbose=0)
            assert d.moved() == []
        """
    )
    loaded = user_project.runpytest_subprocess("-p", "kerasfreeze", "--strict-markers")
    loaded.assert_outcomes(passed=1)
    without = user_project.runpytest_subprocess("--strict-markers")
    assert without.ret != 0
    without.stdout.fnmatch_lines(["*'frozen' not found in `markers` configuration option*"])


def test_no_kerasfreeze_disables_the_plugin(user_project, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    user_project.makepyfile(
        test_user="""
        def test_needs_fixture(weight_tracker):
            pass
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:kerasfreeze")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'weight_tracker' not found*"])


@pytest.mark.parametrize("autoload", ["1", ""])
def test_loading_the_plugin_imports_no_keras_or_backend(pytester, monkeypatch, autoload):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", autoload)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(
        test_light="""
        import sys

        HEAVY = sorted(
            m for m in ("keras", "tensorflow", "jax", "torch", "tf_keras") if m in sys.modules
        )

        def test_plugin_loaded_and_nothing_heavy(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("kerasfreeze")
            assert "pytest_kerasfreeze.plugin" in sys.modules
            assert HEAVY == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "kerasfreeze")
    result.assert_outcomes(passed=1)


def test_public_names_match_the_spec():
    import pytest_kerasfreeze as kf

    for name in (
        "assert_frozen", "assert_trains", "snapshot", "diff", "WeightDiff", "WeightChange",
        "FreezeAssertionError", "LayerNotFoundError", "CompileOrderWarning",
    ):  # fmt: skip
        assert name in kf.__all__ and hasattr(kf, name)
    assert issubclass(kf.FreezeAssertionError, AssertionError)
    assert issubclass(kf.LayerNotFoundError, LookupError)
    assert issubclass(kf.CompileOrderWarning, UserWarning)
    assert sys.version_info >= (3, 10)

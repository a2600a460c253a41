"""The public surface: ``runtime.__all__`` lists exactly what users import, and it imports."""

from __future__ import annotations

import re

import runtime
from runtime import errors


def test_all_names_exist_and_are_unique() -> None:
    assert len(runtime.__all__) == len(set(runtime.__all__))
    missing = [name for name in runtime.__all__ if not hasattr(runtime, name)]
    assert missing == []


def test_every_public_error_is_exported_and_rooted_in_one_base() -> None:
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.RuntimeBaseError)
    }
    assert error_classes - set(runtime.__all__) == set()
    for name in error_classes:
        assert issubclass(getattr(runtime, name), runtime.RuntimeBaseError)


def test_design_names_are_exported() -> None:
    for name in (
        "Runtime",
        "Container",
        "create_step",
        "create_workflow",
        "StepResponse",
        "WorkflowResponse",
        "transform",
        "when",
        "parallelize",
        "RunStatus",
        "RunFailed",
        "StepFailed",
    ):
        assert name in runtime.__all__, name


def test_the_types_of_public_records_fields_are_exported() -> None:
    """A user reading ``RunRecord.kind`` or ``.control``, or a schedule's ``overlap``, can
    import the enum to compare with."""
    for name in ("RunKind", "Control", "Overlap", "RunStatus", "StepStatus", "StepError"):
        assert name in runtime.__all__, name
    assert runtime.RunRecord.model_fields["kind"].annotation is runtime.RunKind


def test_errors_inherit_honest_builtins() -> None:
    assert issubclass(runtime.UnknownServiceError, LookupError)
    assert issubclass(runtime.ConfigError, ValueError)
    assert issubclass(runtime.ReferenceMisuseError, TypeError)
    assert issubclass(runtime.StepTimeoutError, TimeoutError)


def test_the_exception_tree_drawn_in_errors_py_lists_every_class() -> None:
    """The docstring of ``runtime/errors.py`` draws the tree (httpx style): a class added
    without its line there, or a line left for a class that is gone, fails here."""
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }
    drawn = set(re.findall(r"[├└]── (\w+)", errors.__doc__ or ""))
    drawn.add("RuntimeBaseError")  # the root, drawn on its own line
    assert defined == drawn

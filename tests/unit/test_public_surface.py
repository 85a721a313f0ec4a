"""The public surface is what the package roots export: this pins it, so a rename or a new export is a
decision made here, not an accident. Everything under a ``_`` package is internal and may move."""

from __future__ import annotations

import importlib

import pytest

import litellm_fusion

PUBLIC = {
    "litellm_fusion": [
        "FusionBudgetExceededError",
        "FusionConfigError",
        "FusionError",
        "FusionLLM",
        "FusionRequest",
        "FusionResult",
        "FusionSpec",
        "FusionTimeoutError",
        "MemberSpec",
        "ModelAccessDeniedError",
        "PanelFailedError",
        "PresetStore",
        "SynthesisFailedError",
        "__version__",
        "fusion_llm",
        "fusion_server_tool",
        "register",
        "run_fusion",
        "stream_fusion",
    ],
    "litellm_fusion.testing": [
        "RecordedRequest",
        "Script",
        "ScriptedServer",
        "ToolCall",
        "load_scripts",
        "script_from_dict",
        "CallInfo",
        "FakeCompletion",
        "Reply",
        "upstream_error",
        "Stage",
        "answer_blocks",
        "nonce_of",
        "scripted_analysis",
        "stage_of",
    ],
    "litellm_fusion.cli": ["main"],
    "litellm_fusion.local": [
        "BACKENDS",
        "BACKEND_ENV",
        "BASE_ENV",
        "BUILD_HINT",
        "BuildResult",
        "DEFAULT_BASE",
        "DEFAULT_N_CTX",
        "DEFAULT_PORT",
        "INSTALL_HINT",
        "LARGE",
        "LLAMA_CPP_PYTHON",
        "LLAMA_SERVER",
        "LocalModel",
        "LocalModelError",
        "LocalServer",
        "MODELS",
        "MODELS_ENV",
        "SETUP_HINT",
        "SMALL",
        "THREADS_ENV",
        "build_llama_server",
        "choose_backend",
        "default_threads",
        "find_llama_server",
        "free_port",
        "is_verified",
        "llama_cpp_available",
        "local_base_url",
        "local_member",
        "local_models_available",
        "local_preset",
        "local_self_preset",
        "missing_models",
        "model_path",
        "models_dir",
        "remove_model",
        "require_llama_cpp",
        "resolve_models",
        "running_local_server",
        "serve",
        "server_config",
        "serving",
        "serving_backend",
        "setup_models",
    ],
    "litellm_fusion.evaluation": [
        "COLUMNS",
        "Column",
        "ConfigError",
        "ConfigSummary",
        "EvalConfig",
        "EvalReport",
        "EvalSettings",
        "Grade",
        "Paired",
        "PlotUnavailable",
        "Question",
        "QuestionResult",
        "arun_eval",
        "eval_command",
        "extract_number",
        "grade_exact",
        "grade_numeric",
        "grade_regex",
        "load_configs",
        "load_questions",
        "load_results_log",
        "markdown_report",
        "markdown_table",
        "mcnemar_exact",
        "panel_vote",
        "parse_config",
        "parse_configs",
        "parse_verdict",
        "plot",
        "run_eval",
        "wilson",
        "write_outputs",
    ],
    "litellm_fusion.report": [
        "ReportInput",
        "TraceFormatError",
        "eval_page",
        "read_report_input",
        "report_input",
        "trace_page",
    ],
    "litellm_fusion.progress": [
        "CallFinished",
        "FusionStarted",
        "JudgeFinished",
        "JudgeStarted",
        "MemberAnswered",
        "MemberDropped",
        "MemberFailed",
        "MemberStarted",
        "PanelAgreed",
        "ProgressEvent",
        "SynthesizerFinished",
        "SynthesizerStarted",
        "WebToolCalled",
        "listening",
        "progress_text",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_the_exports_are_pinned_and_resolve(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_importing_the_root_loads_no_internals_until_a_name_is_used():
    import subprocess
    import sys

    code = "import sys, litellm_fusion; print(sorted(m for m in sys.modules if m.startswith('litellm_fusion.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_proxy_config_paths_in_the_readme_resolve_through_litellm():
    utils = pytest.importorskip("litellm.proxy.types_utils.utils")
    assert utils.get_instance_fn("litellm_fusion.fusion_llm") is litellm_fusion.fusion_llm
    assert utils.get_instance_fn("litellm_fusion.fusion_server_tool") is litellm_fusion.fusion_server_tool

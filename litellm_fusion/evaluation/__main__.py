"""``python -m litellm_fusion.evaluation QUESTIONS.jsonl --config configs.yaml`` (same as ``litellm-fusion eval``)."""

import os
import sys

# Before LiteLLM is imported (the package imports it): the bundled price map, no download.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_fusion.evaluation.cli import main  # noqa: E402

sys.exit(main())

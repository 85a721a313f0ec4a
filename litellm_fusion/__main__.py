"""``python -m litellm_fusion`` runs the ``litellm-fusion`` command."""

from litellm_fusion.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""The ``litellm-fusion`` command: ``demo``, ``ask``, ``presets`` (``commands``: arguments and dispatch), the
scripted demo's question, answers and judge (``demo``), the live progress board (``progress_board``), and the
``local``, ``eval`` and ``report`` subcommands of the packages that own them.

May import: the public ``litellm_fusion`` surface and every package below it.
"""

from litellm_fusion.cli.commands import main

__all__ = ["main"]

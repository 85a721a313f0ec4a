"""Watch a fusion as it happens: the progress events and :func:`listening`, the public face of
``litellm_fusion._engine.progress`` (which also turns them into a stream's reasoning lines)::

    from litellm_fusion import progress

    with progress.listening(lambda event: print(type(event).__name__, event.at_ms)):
        litellm.completion(model="fusion/budget", messages=[...])   # sync or async, streaming or not

Every event is a frozen dataclass with ``at_ms`` (its offset from the call's start); one about a finished
nested call also has ``started_ms`` and ``latency_ms``. The listener runs on the fusion's event loop: keep it
quick.
"""

from litellm_fusion._engine.progress import (
    CallFinished,
    FusionStarted,
    JudgeFinished,
    JudgeStarted,
    MemberAnswered,
    MemberDropped,
    MemberFailed,
    MemberStarted,
    PanelAgreed,
    ProgressEvent,
    SynthesizerFinished,
    SynthesizerStarted,
    WebToolCalled,
    listening,
)
from litellm_fusion._engine.progress_text import progress_text

__all__ = [
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
]

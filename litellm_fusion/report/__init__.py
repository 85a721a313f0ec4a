"""Pages people read: a fusion trace (``trace_page``) or an eval run (``eval_page``) as one self-contained HTML file.

Pure functions from data to an HTML string; ``litellm-fusion report``, ``ask/demo --html`` and ``eval --html``
write them.
"""

from litellm_fusion.report.eval_page import eval_page
from litellm_fusion.report.load import ReportInput, TraceFormatError, read_report_input, report_input
from litellm_fusion.report.trace_page import trace_page

__all__ = ["trace_page", "eval_page", "ReportInput", "TraceFormatError", "report_input", "read_report_input"]

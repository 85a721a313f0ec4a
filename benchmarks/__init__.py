"""litellm-fusion's benchmarks: two commands, one module per measurement, shared helpers below them.

    python benchmarks/run.py [--quick]          the latency/cost table (README "Measured")
    python benchmarks/soak.py [--requests N]    the leak soak (perf-reliability G7)

The measurements of ``run.py``, each owning its settings and its rows of the table (the section letter
is the table's § and the JSON's key):

=====  ======================  =============================================================
key    module                  what it measures
=====  ======================  =============================================================
server ``calibration``         what a thread / process upstream adds to a plain call
a      ``overhead``            fusion vs the critical path and a hand-rolled call chain
b      ``panel_width``         a 5-member panel vs a 1-member one (parallelism)
c      ``straggler``           p99 with one hanging member: quorum + grace vs wait-for-all
d      ``streaming``           time to first token
e      ``proxy_throughput``    requests/s through a real ``litellm`` proxy
f      ``short_circuit``       what ``short_circuit="exact"`` saves on an agreeing panel
=====  ======================  =============================================================

The soak: ``soak`` (the command, one run or several worker processes), ``soak_config`` (what a run does,
batch by batch), ``soak_requests`` (the mix of request kinds and what each sends), ``soak_driver`` (warm-up,
baselines, batches, drain), ``soak_symptoms`` (leak warnings and logs), ``soak_memory`` (tracemalloc and
process counters), ``soak_report`` (criteria and the markdown report).

Shared helpers: ``upstream`` (the one scripted upstream, a child process or a thread, and its control
protocol), ``scenario`` (the question, the panel and their scripts), ``calls`` (the fusion call and its
hand-rolled twin), ``proxy`` (a real proxy process and process CPU accounting), ``stats``, ``table``.
Imports point from the commands to the measurements to the helpers; nothing here is imported by
``litellm_fusion``. ``local_server.py`` and ``extractors.py`` are standalone scripts.
"""

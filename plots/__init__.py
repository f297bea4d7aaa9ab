"""Offline Bokeh pages for results: ``backtest_page.write_backtest_page(result_dir)``
(report.html) and ``sweep_page.write_sweep_page(sweep_dir)`` (sweep.html). Both read only
the saved files of a result folder and write one self-contained HTML file (BokehJS
inlined, no network needed to view it). Needs the ``plots`` extra (bokeh)."""

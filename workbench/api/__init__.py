"""The headless front door both faces call (the CLI in ``workbench.cli``, the app in
``workbench.tui`` through ``services.Services``): no textual, rich or torch here.

  runs       build_spec (the profiler's default repeats in one place), check_spec (everything
             checkable before a child starts), run (cancel: a threading.Event), rerun_spec,
             exit_code
  device     probe_devices (NVML), layer_blocker (the child's requirement check),
             profiler_capabilities, estimate_memory
  sessions   open_store, list_sessions (sort by any of SORT_KEYS), get_session, delete_session,
             default_baseline, save_analysis
  analysis   analyze_session, analyze_artifacts (bounded input), hta_comparison
  diff       diff_targets (ids or artifacts), diff_sessions, check_gate (fails closed)
  advise     findings; LLM: llm_unavailable (asked first), llm_request, request_text (what
             consent is asked for), ask_llm (stream, store)
  export     Markdown / JSON / CSV of a session or a diff, write_text (atomic)
  ladder, sweep, suite, evaluate, calibrate   the orchestrations over runs
  views      what the app's screens draw (AnalysisView, DiffView)
  pipeline/  the analysis above parsers, store and analyzers (parse cache, ceilings, HTA)
"""

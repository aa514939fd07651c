"""sergrad.analysis: Polars queries, tables, plots and the HTML report over a results store.

Reads Parquet only; never imports torch or ray (tests/test_analysis_imports.py checks it).

    load       scan(store, table), results(store), round_results(store), scored_predictions(store)
    query      run_query(store, sql), apply_where(frame, condition), write_frame(frame, path)
    tables     ser_table, layer_table, updates_table, tradeoff_table
    plots      plot_tradeoff, plot_updates, plot_layers
    plots_runs plot_epsilon, plot_roc
    report     write_report(store, out_dir)
    cli        `sergrad query | table | plot | report`
"""

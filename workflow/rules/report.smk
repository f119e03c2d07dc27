# Tables and figures of the experiment (and, for the paper's config, of paper/).


rule report:
    """Every table (CSV, Markdown, LaTeX) and figure (PDF, PNG) from the runs; the forgetting and continual
    tables show the forgetting rule's summary (its drops and verdicts), not a second computation."""
    input:
        config=JOB_CONFIG.format(job="report"),
        metrics=RUN_METRICS,
        benchmark=BENCHMARKS,
        forgetting=FORGETTING_SUMMARY,
    output:
        REPORT_TABLES,
        [figure(name) for name in FIGURES],
        expand(f"{REPORT_DIR}/figures/{{name}}.pdf", name=FIGURES),
    params:
        out=lambda wildcards, output: Path(output[0]).parents[1],
    log:
        f"{RESULTS}/logs/report.log",
    shell:
        "python -m unihead report --config {input.config:q} {input.metrics:q} --benchmark {input.benchmark:q}"
        " --forgetting {input.forgetting:q} --out {params.out:q} > {log:q} 2>&1"


rule readme:
    """Copy the experiment's final-metrics, forgetting and continual tables (and its EWC sweep's) into README.md
    (target: snakemake readme)."""
    input:
        config=JOB_CONFIG.format(job="readme"),
        final=f"{REPORT_DIR}/tables/final_metrics.md",
        forgetting=f"{REPORT_DIR}/tables/forgetting.md",
        continual=f"{REPORT_DIR}/tables/continual.md",
        ewc_sweep=[path for path in SWEEP_FILES if path.endswith(".md")],
    output:
        # updated in place (its other sections are kept), so Snakemake must not delete it before the job
        update("README.md"),
    log:
        f"{RESULTS}/logs/readme.log",
    shell:
        "python -m unihead readme --config {input.config:q} {input.final:q} {input.forgetting:q} {input.continual:q}"
        " {input.ewc_sweep:q}"
        " --readme {output:q} > {log:q} 2>&1"

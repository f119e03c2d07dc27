# Tables and figures of the experiment (and, for the paper's config, of paper/).

REPORT_TABLES = expand(
    f"{REPORT_DIR}/tables/{{name}}.{{ext}}",
    name=["final_metrics", "forgetting", "continual", "r_matrices", "compute"],
    ext=["csv", "md", "tex"],
)
FIGURES = ["final_metrics", "stages", "r_matrices", "training_curves", "qualitative"]
REPORT_FILES = REPORT_TABLES + expand(f"{REPORT_DIR}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["pdf", "png"])


rule report:
    """Every table (CSV, Markdown, LaTeX) and figure (PDF, PNG) from the runs."""
    input:
        config=RESOLVED_CONFIG,
        metrics=RUN_METRICS,
        benchmark=BENCHMARK,
        forgetting=FORGETTING_TABLES,
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
        " --out {params.out:q} > {log:q} 2>&1"


rule readme:
    """Copy the experiment's final-metrics, forgetting and continual tables into README.md (target: snakemake readme)."""
    input:
        config=RESOLVED_CONFIG,
        final=f"{REPORT_DIR}/tables/final_metrics.md",
        forgetting=f"{REPORT_DIR}/tables/forgetting.md",
        continual=f"{REPORT_DIR}/tables/continual.md",
    log:
        f"{RESULTS}/logs/readme.log",
    shell:
        "python -m unihead readme --config {input.config:q} {input.final:q} {input.forgetting:q} {input.continual:q}"
        " > {log:q} 2>&1"

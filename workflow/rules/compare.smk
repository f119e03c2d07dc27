# The experiment's results against its committed reference (workflow.reference), when that folder exists:
# every number side by side, with its tolerance. The job fails when something is not reproduced; its log
# (printed to the terminal too) names each such number.

REFERENCE_RUNS = f"runs/{'*/' if VARIANTS else ''}*/seed*/metrics.json"

if COMPARISON:

    rule compare:
        """Compare the runs, forgetting tables and data manifest with the reference's (unihead compare)."""
        input:
            reference_runs=sorted(str(p) for p in Path(REFERENCE).glob(REFERENCE_RUNS)),
            reference_tables=[str(Path(REFERENCE) / Path(t).relative_to(RESULTS)) for t in FORGETTING_TABLES],
            reference_manifest=str(Path(REFERENCE) / Path(MANIFEST).relative_to(RESULTS)),
            runs=RUN_METRICS,
            tables=FORGETTING_TABLES,
            manifest=MANIFEST,
        output:
            COMPARISON,
        params:
            # results/<exp>/data/manifest.json -> results/<exp>
            reference=lambda wildcards, input: Path(input.reference_manifest).parents[1],
            mine=lambda wildcards, input: Path(input.manifest).parents[1],
            out=lambda wildcards, output: Path(output[0]).parent,
        log:
            f"{RESULTS}/logs/compare.log",
        shell:
            "python -m unihead compare {params.reference:q} {params.mine:q} --out {params.out:q} 2>&1 | tee {log:q}"

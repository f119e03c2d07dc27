# Forgetting against the threshold, and the model's inference latency.

FORGETTING_TABLES = [f"{RESULTS}/tables/forgetting_per_seed.csv", f"{RESULTS}/tables/forgetting_summary.csv"]
INFERENCE = f"{RESULTS}/compute/inference.json"


rule forgetting:
    """Drops from both baselines, verdicts (pass, fail, not learned) by the threshold rule, BWT, forgetting."""
    input:
        RUN_METRICS,
    output:
        FORGETTING_TABLES,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
        threshold=EXPERIMENT.threshold,
        threshold_rule=EXPERIMENT.threshold_rule,
        learned_margin=EXPERIMENT.learned_margin,
    log:
        f"{RESULTS}/logs/forgetting.log",
    shell:
        "python -m unihead forgetting {input} --out {params.out} --threshold {params.threshold} "
        "--threshold-rule {params.threshold_rule} --learned-margin {params.learned_margin} > {log} 2>&1"


rule inference_speed:
    """Median forward time of one image at the experiment's size, on the device training jobs get."""
    input:
        config=RESOLVED_CONFIG,
    output:
        INFERENCE,
    params:
        device="cuda" if EXPERIMENT.workflow.gpus_per_run else "cpu",
    log:
        f"{RESULTS}/logs/inference_speed.log",
    benchmark:
        f"{RESULTS}/benchmarks/inference_speed.tsv"
    threads: EXPERIMENT.workflow.threads_per_run
    resources:
        gpu=EXPERIMENT.workflow.gpus_per_run,
    shell:
        "python -m unihead speed --config {input.config} --device {params.device} --runs 20 --json {output} > {log} 2>&1"

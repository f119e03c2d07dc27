# Forgetting against the threshold, and the model's inference latency.

FORGETTING_SUMMARY = f"{RESULTS}/tables/forgetting_summary.csv"
FORGETTING_TABLES = [f"{RESULTS}/tables/forgetting_per_seed.csv", FORGETTING_SUMMARY]
# With variants, each variant's model is timed (a variant may change the heads).
INFERENCE = f"{RESULTS}/compute/{{variant}}/inference.json" if VARIANTS else f"{RESULTS}/compute/inference.json"
INFERENCES = expand(INFERENCE, variant=VARIANTS) if VARIANTS else [INFERENCE]
INFERENCE_JOB = "inference_speed/{variant}" if VARIANTS else "inference_speed"


rule forgetting:
    """Drops from both baselines, verdicts (pass, fail, not learned) by the threshold rule, BWT, forgetting;
    every run the experiment lists must be there (the threshold, rule and margin come from its config)."""
    input:
        config=JOB_CONFIG.format(job="forgetting"),
        metrics=RUN_METRICS,
    output:
        FORGETTING_TABLES,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
    log:
        f"{RESULTS}/logs/forgetting.log",
    shell:
        "python -m unihead forgetting {input.metrics:q} --config {input.config:q} --out {params.out:q} > {log:q} 2>&1"


rule inference_speed:
    """Median forward time of one image at the experiment's size (of a variant's model), on the device
    training jobs get."""
    input:
        config=JOB_CONFIG.format(job="inference"),
    output:
        INFERENCE,
    params:
        device="cuda" if EXPERIMENT.workflow.gpus_per_run else "cpu",
        variant=lambda wildcards: f"--variant {shlex.quote(wildcards.variant)}" if VARIANTS else "",
    log:
        f"{RESULTS}/logs/{INFERENCE_JOB}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{INFERENCE_JOB}.tsv"
    threads: EXPERIMENT.workflow.threads_per_run
    resources:
        gpu=EXPERIMENT.workflow.gpus_per_run,
    shell:
        "python -m unihead speed --config {input.config:q} {params.variant} --device {params.device:q} --runs 20"
        " --json {output:q} > {log:q} 2>&1"

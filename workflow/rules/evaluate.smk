# Forgetting against the threshold, and what the model costs on the training jobs' device.


rule forgetting:
    """Drops from both baselines with their bootstrap intervals, verdicts (pass, fail, inconclusive, not learned)
    by the threshold rule, BWT, forgetting; every run the experiment lists must be there (the threshold, rule,
    margin and bootstrap come from its config; the per-image records are read beside each metrics.json)."""
    input:
        config=JOB_CONFIG.format(job="forgetting"),
        metrics=RUN_METRICS,
        per_image=RUN_PER_IMAGE,
    output:
        FORGETTING_TABLES,
    params:
        out=lambda wildcards, output: Path(output[0]).parent,
    log:
        f"{RESULTS}/logs/forgetting.log",
    shell:
        "python -m unihead forgetting {input.metrics:q} --config {input.config:q} --out {params.out:q} > {log:q} 2>&1"


rule benchmark:
    """Parameters, forward latency at the experiment's size (batch 1), training images/s of the full model and
    of the bare backbone + FPN, the data pipeline's images/s and peak memory (of a variant's model), on the
    device training jobs get."""
    input:
        config=BENCHMARK_CONFIG,
        manifest=MANIFEST,
    output:
        BENCHMARK,
    params:
        device="cuda" if EXPERIMENT.workflow.gpus_per_run else "cpu",
        variant=lambda wildcards: f"--variant {shlex.quote(wildcards.variant)}" if VARIANTS else "",
        data_root=EXPERIMENT.data.root,
    log:
        f"{RESULTS}/logs/{BENCHMARK_JOB}.log",
    threads: EXPERIMENT.workflow.threads_per_run
    resources:
        gpu=EXPERIMENT.workflow.gpus_per_run,
        gpu_share=EXPERIMENT.workflow.gpu_share_alone,  # no training job beside it on the GPU
    shell:
        "python -m unihead benchmark --config {input.config:q} {params.variant} --device {params.device:q}"
        " --repeats 20 --data-root {params.data_root:q} --json {output:q} > {log:q} 2>&1"

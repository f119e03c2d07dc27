# One job per run: a strategy over the task sequence, or a single-task baseline, for one seed (and variant).


rule train:
    """Train and evaluate one run; an interrupted job resumes from its last epoch when rerun."""
    input:
        config=RUN_CONFIG,
        manifest=MANIFEST,
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        per_image=f"{RUN_DIR}/per_image.json.gz",
        weights=f"{RUN_DIR}/model.pt",
    params:
        out=lambda wildcards, output: Path(output.metrics).parent,
    log:
        f"{RESULTS}/logs/train/{RUN_ID}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{RUN_ID}-seed{{seed}}.tsv"
    threads: EXPERIMENT.workflow.threads_per_run
    # sequence runs (three stages) before the single-stage baselines, so the short jobs fill the end
    priority: lambda wildcards: 0 if wildcards.run.startswith("baseline-") else 1
    resources:
        gpu=EXPERIMENT.workflow.gpus_per_run,
        gpu_share=EXPERIMENT.workflow.gpu_share_per_run,  # workflow.runs_per_gpu jobs fit on one GPU
        mem_mb=16000,
        runtime=EXPERIMENT.workflow.runtime_minutes,
    shell:
        "python -m unihead train --config {input.config:q} --manifest {input.manifest:q}"
        " --out {params.out:q} 2>&1 | tee {log:q}"  # each epoch's line on the terminal too, as it ends

# EWC's penalty weight chosen on held-out training images (code/unihead/ewc_sweep.py): one ewc run per weight and
# seed of ewc_sweep, then the table and the choice that every run with EWC reads (workflow/rules/config.smk). The
# val images the tables report take no part. Defined only when ewc_sweep lists weights.

if SWEEP.penalty_weights:

    rule sweep_train:
        """Train one weight's ewc run on the training images but the held-out ones, and score it on those."""
        input:
            config=f"{SWEEP_RUN_DIR}/run.yaml",
            manifest=MANIFEST,
        output:
            metrics=f"{SWEEP_RUN_DIR}/metrics.json",
            history=f"{SWEEP_RUN_DIR}/history.csv",
            per_image=f"{SWEEP_RUN_DIR}/per_image.json.gz",
            weights=f"{SWEEP_RUN_DIR}/model.pt",
        params:
            out=lambda wildcards, output: Path(output.metrics).parent,
        log:
            f"{RESULTS}/logs/ewc_sweep/lambda{{weight}}-seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/ewc_sweep/lambda{{weight}}-seed{{seed}}.tsv"
        threads: EXPERIMENT.workflow.threads_per_run
        priority: 2  # the choice holds up every EWC run
        resources:
            gpu=EXPERIMENT.workflow.gpus_per_run,
            gpu_share=EXPERIMENT.workflow.gpu_share_per_run,
            mem_mb=16000,
            runtime=EXPERIMENT.workflow.runtime_minutes,
        shell:
            "python -m unihead train --config {input.config:q} --manifest {input.manifest:q}"
            " --out {params.out:q} 2>&1 | tee {log:q}"

    rule ewc_sweep:
        """The sweep's table (each weight's held-out scores over seeds) and its choice: the weight of the best
        average final score."""
        input:
            config=JOB_CONFIG.format(job="ewc_sweep"),
            metrics=SWEEP_METRICS,
        output:
            table=SWEEP_TABLES,
            choice=EWC_CHOICE,
        params:
            table=lambda wildcards, output: Path(output.table[0]).with_suffix(""),
        log:
            f"{RESULTS}/logs/ewc_sweep.log",
        shell:
            "python -m unihead ewc-sweep {input.metrics:q} --config {input.config:q} --table {params.table:q}"
            " --choice {output.choice:q} > {log:q} 2>&1"

    rule ewc_sweep_report:
        """The sweep's table among the report's tables (the paper and the README read it there)."""
        input:
            SWEEP_TABLES,
        output:
            SWEEP_FILES,
        log:
            f"{RESULTS}/logs/ewc_sweep_report.log",
        run:
            copy_files(input, output, log[0])

    localrules:
        ewc_sweep_report,

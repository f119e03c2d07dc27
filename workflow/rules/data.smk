# The experiment's data: synthesised, built from the official sources, or a
# folder the user already has.


rule prepare_data:
    """Write the synthetic data (data.source: synthetic), build the mini datasets from the official
    VOC 2012, COCO 2017 and Imagenette archives (official; downloads cached under
    data.official.cache), or validate an existing folder in the challenge layout (folder); then list
    every file with its sha256."""
    input:
        config=JOB_CONFIG.format(job="data"),
        subsets=SUBSET_FILES,
    output:
        MANIFEST,
    log:
        f"{RESULTS}/logs/prepare_data.log",
    shell:
        "python -m unihead prepare --config {input.config:q} --manifest {output:q} > {log:q} 2>&1"


# Official sources are downloaded on the machine running Snakemake: a cluster's compute nodes often
# have no internet.
if EXPERIMENT.data.source == "official":

    localrules:
        prepare_data,

# paper/main.pdf from the LaTeX source and the generated tables and figures. Needs a TeX
# distribution with latexmk (see README); nothing else in the workflow does. Defined only for an
# experiment whose report goes into paper/ (workflow.report_dir: paper), the tables and figures
# that paper/main.tex reads: no other experiment's numbers end up in the paper, except the ablation
# experiment's in its own section.

# The Ablations section reads the ablation experiment's report (workflow/config/ablations.yaml, report_dir
# paper/ablations), another config's output: the paper states that it has not been run while it is absent,
# and is rebuilt when it changes once it is there.
ABLATION_FILES = [
    "paper/ablations/tables/final_metrics.tex",
    "paper/ablations/tables/continual.tex",
    "paper/ablations/tables/compute.tex",
    "paper/ablations/figures/final_metrics.pdf",
]
# Its subsection on task order and schedule reads the order experiment's report (workflow/config/ablations-order.yaml,
# report_dir paper/orders) in the same way.
ORDER_FILES = [
    "paper/orders/tables/forgetting.tex",
    "paper/orders/tables/continual.tex",
    "paper/orders/tables/compute.tex",
]
# The section "Real data on a CPU" reads the committed reference of workflow/config/real-cpu.yaml, made on a
# 2-core CPU (results/real-cpu-reference/, by workflow/scripts/save_reference.sh).
REAL_CPU_FILES = [
    "results/real-cpu-reference/report/tables/final_metrics.tex",
    "results/real-cpu-reference/report/tables/forgetting.tex",
    "results/real-cpu-reference/report/tables/ewc_sweep.tex",
]

if REPORT_DIR == "paper":

    rule paper:
        """Build paper/main.pdf (target: snakemake paper)."""
        input:
            tex="paper/main.tex",
            bib="paper/references.bib",
            ewc_sweep=SWEEP_FILES,
            report=REPORT_FILES,
            ablations=[path for path in ABLATION_FILES if Path(path).exists()],
            orders=[path for path in ORDER_FILES if Path(path).exists()],
            real_cpu=REAL_CPU_FILES,
        output:
            "paper/main.pdf",
        log:
            f"{RESULTS}/logs/paper.log",
        shell:
            "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd {input.tex:q} > {log:q} 2>&1"

else:

    rule paper:
        """Another experiment has no paper: say which one has, instead of Snakemake's "no rule paper"."""
        input:
            another_experiments_paper,
        output:
            "paper/main.pdf",
        log:
            f"{RESULTS}/logs/paper.log",
        shell:
            "false"  # never planned: the input function stops first

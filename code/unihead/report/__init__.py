"""The paper's tables (CSV, Markdown, LaTeX) and figures (PDF, PNG) from a set of runs."""

# make stats: every figure and table of one btda run.
#
#   Rscript thesis/stats.R RUN.sqlite OUTDIR [SETS.csv]
#
# Writes OUTDIR/figures/<name>.pdf and .png for every figure in figures.R,
# OUTDIR/figures.tex (the figure pages with captions), OUTDIR/tables.tex,
# OUTDIR/numbers.csv (per-torrent figures, checked against `btda report --json`) and
# OUTDIR/figures/manifest.csv (pages per figure). SETS.csv (columns torrent,set; torrent
# is an info-hash or a name) overrides the default size classes of download_set.
# The SQL here stays within what SQLite 3.40 (Debian 12's RSQLite) understands.

suppressPackageStartupMessages({
  library(DBI)
  library(RSQLite)
  library(ggplot2)
  library(maps)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript thesis/stats.R RUN.sqlite OUTDIR [SETS.csv]")
here <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
source(file.path(here, "lib.R"))
source(file.path(here, "figures.R"))
source(file.path(here, "tables.R"))

db <- args[1]
out <- args[2]
if (!file.exists(db)) stop("no such database: ", db)
dir.create(file.path(out, "figures"), recursive = TRUE, showWarnings = FALSE)
# Indexes the aggregate queries below read instead of sorting tens of millions of visit
# rows (btda creates them in new databases; older ones get them here, once: indexes only,
# no row changes). A database that cannot be written (read-only file, a run still
# holding it) is read without them, slower.
ensure_indexes(db)
con <- dbConnect(SQLite(), db, flags = SQLITE_RO)
on.exit(dbDisconnect(con))
ctx <- list(con = con, out = out, cache = new.env())
stamp <- function(what) cat(sprintf("  %-26s %6.1f s\n", what, (proc.time() - t0)[["elapsed"]]))
t0 <- proc.time()

ctx$run <- q(ctx, "SELECT started_at, ended_at, hostname, version, config, end_reason FROM run ORDER BY id LIMIT 1")
# Every run: one, or several after `btda merge` (one per host).
ctx$runs <- q(ctx, "SELECT started_at, ended_at, hostname FROM run ORDER BY id")
ctx$config <- if (nrow(ctx$run) > 0) ctx$run$config[1] else ""

# Per-torrent figures, with the same definitions as `btda report`, each counted in one
# aggregate query (the visit counts from the visit_torrent_outcome index).
ctx$torrents <- torrent_numbers(ctx)
stamp("per-torrent numbers")

# Size classes for download_set, or the user's.
size_class <- function(bytes) {
  gb <- bytes / 1e9
  ifelse(is.na(gb), "other", ifelse(gb >= 1 & gb < 5, "A (1-5 GB)", ifelse(gb >= 5 & gb < 20, "B (5-20 GB)",
         ifelse(gb >= 30, "C (30 GB and more)", "other"))))
}
ctx$torrents$set <- size_class(ctx$torrents$total_size)
if (length(args) >= 3 && nzchar(args[3])) {
  user <- utils::read.csv(args[3], stringsAsFactors = FALSE)
  if (!all(c("torrent", "set") %in% names(user))) stop(args[3], ": needs columns torrent,set")
  i <- match(ctx$torrents$info_hash, tolower(user$torrent))
  j <- match(ctx$torrents$name, user$torrent)
  pick <- ifelse(is.na(i), j, i)
  ctx$torrents$set[!is.na(pick)] <- user$set[pick[!is.na(pick)]]
}

# Time: from the run's start to its end (or the last thing recorded).
last_seen <- q(ctx, "SELECT max(m) AS m FROM (SELECT max(started_at) AS m FROM visit
                     UNION ALL SELECT max(at) FROM request UNION ALL SELECT max(at) FROM statistic)")$m
ctx$start <- if (nrow(ctx$run) > 0) ctx$run$started_at[1] else 0
ctx$end <- max(c(ctx$start, if (nrow(ctx$run) > 0) ctx$run$ended_at[1] else NA, last_seen), na.rm = TRUE)
ctx$bin <- time_bins(ctx$start, ctx$end)
# Per peer: the threshold ranges in which it was seen below and later at or above the
# threshold, read once for the threshold figure and numbers.csv.
ctx$threshold_peers <- threshold_peers(ctx)
stamp("threshold ranges")

manifest <- NULL
for (name in FIGURES) {
  fig <- tryCatch(get(name)(ctx), error = function(e) stop(sprintf("figure %s: %s", name, conditionMessage(e))))
  manifest <- rbind(manifest, save_figure(ctx, name, fig$pages, fig$captions))
  stamp(sprintf("%s (%d page%s)", name, length(fig$pages), if (length(fig$pages) > 1) "s" else ""))
}
utils::write.csv(stats::aggregate(page ~ name, manifest, max), file.path(out, "figures", "manifest.csv"),
                 row.names = FALSE)
pages <- sprintf("\\begin{figure}[p]\\centering\\includegraphics[page=%d,width=\\textwidth]{figures/%s.pdf}\\caption{\\texttt{%s}%s: %s}\\end{figure}",
                 manifest$page, manifest$name, tex_escape(manifest$name),
                 ifelse(manifest$page > 1, sprintf(" (page %d)", manifest$page), ""), manifest$caption)
writeLines(c(rbind(pages, ifelse(seq_along(pages) %% 2 == 0, "\\clearpage", ""))), file.path(out, "figures.tex"))
write_tables(ctx)
stamp("tables")
cat(sprintf("stats: %d figures (%d pages) in %s\n", length(FIGURES), nrow(manifest), file.path(out, "figures")))

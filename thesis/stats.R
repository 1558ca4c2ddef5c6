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
con <- dbConnect(SQLite(), db, flags = SQLITE_RO)
on.exit(dbDisconnect(con))
ctx <- list(con = con, out = out)

ctx$run <- q(ctx, "SELECT started_at, ended_at, hostname, version, config, end_reason FROM run ORDER BY id LIMIT 1")
# Every run: one, or several after `btda merge` (one per host).
ctx$runs <- q(ctx, "SELECT started_at, ended_at, hostname FROM run ORDER BY id")
ctx$config <- if (nrow(ctx$run) > 0) ctx$run$config[1] else ""

# Per-torrent figures, with the same definitions as `btda report`.
ctx$torrents <- q(ctx, "
  SELECT t.id, t.info_hash, t.name, t.total_size, t.pieces_count, t.piece_size,
         t.complete_threshold, t.threshold,
         (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id) AS peers,
         (SELECT count(*) FROM visit v WHERE v.torrent_id = t.id) AS visits,
         (SELECT count(*) FROM visit v WHERE v.torrent_id = t.id AND v.outcome = 'ok') AS visits_ok,
         (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id
            AND p.last_pieces >= t.complete_threshold) AS complete_peers,
         (SELECT count(*) FROM confirmed_download c WHERE c.torrent_id = t.id) AS confirmed,
         (SELECT count(*) FROM confirmed_download_strict c WHERE c.torrent_id = t.id) AS confirmed_strict,
         (SELECT count(*) FROM peer p WHERE p.torrent_id = t.id
            AND EXISTS (SELECT 1 FROM visit v WHERE v.peer_id = p.id AND v.outcome = 'ok' AND v.fallback = 1)
            AND NOT EXISTS (SELECT 1 FROM visit v WHERE v.peer_id = p.id AND v.outcome = 'ok'
                            AND v.encryption IS NULL)) AS encrypted_only,
         (SELECT max(inc) FROM (SELECT max(CASE WHEN r.ok = 1 THEN r.completed END)
                                     - min(CASE WHEN r.ok = 1 THEN r.completed END) AS inc
                                FROM request r WHERE r.torrent_id = t.id AND r.source = 'tracker'
                                  AND r.url IS NOT NULL GROUP BY r.url)) AS tracker_reported
  FROM torrent t ORDER BY t.id")

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
# Per peer and observation: the lowest earlier count and this one, read once for the
# threshold figure and numbers.csv.
ctx$threshold_peers <- threshold_peers(ctx)

manifest <- NULL
for (name in FIGURES) {
  fig <- tryCatch(get(name)(ctx), error = function(e) stop(sprintf("figure %s: %s", name, conditionMessage(e))))
  manifest <- rbind(manifest, save_figure(ctx, name, fig$pages, fig$captions))
  cat(sprintf("  %-26s %d page(s)\n", name, length(fig$pages)))
}
utils::write.csv(stats::aggregate(page ~ name, manifest, max), file.path(out, "figures", "manifest.csv"),
                 row.names = FALSE)
pages <- sprintf("\\begin{figure}[p]\\centering\\includegraphics[page=%d,width=\\textwidth]{figures/%s.pdf}\\caption{\\texttt{%s}%s: %s}\\end{figure}",
                 manifest$page, manifest$name, tex_escape(manifest$name),
                 ifelse(manifest$page > 1, sprintf(" (page %d)", manifest$page), ""), manifest$caption)
writeLines(c(rbind(pages, ifelse(seq_along(pages) %% 2 == 0, "\\clearpage", ""))), file.path(out, "figures.tex"))
write_tables(ctx)
cat(sprintf("stats: %d figures (%d pages) in %s\n", length(FIGURES), nrow(manifest), file.path(out, "figures")))

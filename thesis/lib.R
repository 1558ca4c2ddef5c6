# Helpers shared by the figure and table code of `make stats`: reading the run
# database, time bins, saving figures (PDF with embedded fonts through cairo, plus a PNG
# of the first page), "no data" pages, and LaTeX escaping.

q <- function(ctx, sql, params = NULL) {
  if (is.null(params)) DBI::dbGetQuery(ctx$con, sql) else DBI::dbGetQuery(ctx$con, sql, params = params)
}

theme_btda <- function() {
  ggplot2::theme_bw(base_size = 10) +
    ggplot2::theme(legend.position = "bottom", plot.title = ggplot2::element_text(face = "bold"))
}

# A page that says the figure has nothing to show, and why.
no_data <- function(title, why) {
  ggplot2::ggplot() +
    ggplot2::annotate("text", x = 0.5, y = 0.5, label = paste("No data:", why), size = 5) +
    ggplot2::xlim(0, 1) + ggplot2::ylim(0, 1) +
    ggplot2::labs(title = title, x = NULL, y = NULL) +
    theme_btda() +
    ggplot2::theme(axis.text = ggplot2::element_blank(), axis.ticks = ggplot2::element_blank(),
                   panel.grid = ggplot2::element_blank())
}

# Time bins: hours for runs of three hours or more, minutes down to ten minutes, ten
# seconds below (a demo run of two minutes would otherwise be one or two bins).
time_bins <- function(run_start, run_end) {
  span <- max(1, run_end - run_start)
  if (span >= 3 * 3600) list(size = 3600, label = "hours since start")
  else if (span >= 600) list(size = 60, label = "minutes since start")
  else list(size = 10, label = "tens of seconds since start")
}

bin_of <- function(ctx, t) floor((t - ctx$start) / ctx$bin$size)

# Writes figure `name`: every plot of `pages` as a page of figures/name.pdf, the first
# as figures/name.png; records the pages and captions for report.tex.
save_figure <- function(ctx, name, pages, captions) {
  dir <- file.path(ctx$out, "figures")
  pdf_path <- file.path(dir, paste0(name, ".pdf"))
  grDevices::cairo_pdf(pdf_path, width = 8, height = 5, onefile = TRUE)
  for (p in pages) print(p)
  grDevices::dev.off()
  grDevices::png(file.path(dir, paste0(name, ".png")), width = 1200, height = 750, res = 150,
                 type = "cairo")
  print(pages[[1]])
  grDevices::dev.off()
  captions <- rep_len(captions, length(pages))
  data.frame(name = name, page = seq_along(pages), caption = captions, stringsAsFactors = FALSE)
}

tex_escape <- function(x) {
  x <- as.character(x)
  x[is.na(x)] <- "--"
  x <- gsub("\\\\", "\\\\textbackslash{}", x)
  x <- gsub("([#$%&_{}])", "\\\\\\1", x)
  x <- gsub("~", "\\\\textasciitilde{}", x)
  x <- gsub("\\^", "\\\\textasciicircum{}", x)
  x
}

# Reads `key = number` from the [section] of the run's TOML configuration.
config_number <- function(config, section, key, default) {
  lines <- strsplit(config, "\n", fixed = TRUE)[[1]]
  current <- ""
  for (l in trimws(lines)) {
    if (grepl("^\\[[^]]+\\]$", l)) current <- gsub("^\\[|\\]$", "", l)
    else if (current == section && grepl(paste0("^", key, "\\s*="), l)) {
      v <- suppressWarnings(as.numeric(trimws(sub("#.*$", "", sub("^[^=]*=", "", l)))))
      if (!is.na(v)) return(v)
    }
  }
  default
}

short_url <- function(u) sub("/announce$", "", sub("^[a-z]+://", "", u))

# Tracker labels: scheme://host:port, so an HTTP and a UDP tracker on one host and port
# stay apart; URLs that still share a label (another path, a passkey) get #1, #2, … in
# URL order (the path itself may hold a private tracker's passkey: never shown).
tracker_label <- function(u) {
  urls <- sort(unique(u))
  bases <- sub("^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]+).*$", "\\1", urls)
  n <- ave(seq_along(urls), bases, FUN = seq_along)
  shared <- ave(seq_along(urls), bases, FUN = length) > 1
  label <- ifelse(shared, paste0(bases, " #", n), bases)
  unname(label[match(u, urls)])
}

# Cumulative sums per bin over every bin from 0 to the last.
cumulative <- function(bins, counts, last) {
  all <- data.frame(bin = 0:max(0, last))
  all$n <- 0
  keep <- !is.na(bins) & bins >= 0 & bins <= max(0, last)
  if (any(keep)) {
    got <- stats::aggregate(list(n = counts[keep]), list(bin = bins[keep]), sum)
    all$n[match(got$bin, all$bin)] <- got$n
  }
  all$n <- cumsum(all$n)
  all
}

# The indexes of btda's schema that make stats' aggregates cheap (the same statements as
# src/store/schema.rs): created in a database from before them, in one short write
# transaction that adds indexes and changes no row. If the file cannot be written (a
# read-only copy, or btda still writing it), stats goes on without them, slower.
STATS_INDEXES <- c(
  "CREATE INDEX IF NOT EXISTS visit_torrent_outcome ON visit (torrent_id, outcome, direction, attempt)",
  "CREATE INDEX IF NOT EXISTS visit_ok_connect ON visit (connect_ms) WHERE outcome = 'ok'",
  "CREATE INDEX IF NOT EXISTS visit_ok_handshake ON visit (handshake_ms) WHERE outcome = 'ok'",
  "CREATE INDEX IF NOT EXISTS visit_ok_gap ON visit (max_gap_ms) WHERE outcome = 'ok'")

ensure_indexes <- function(db) {
  have <- tryCatch({
    ro <- DBI::dbConnect(RSQLite::SQLite(), db, flags = RSQLite::SQLITE_RO)
    on.exit(DBI::dbDisconnect(ro), add = TRUE)
    DBI::dbGetQuery(ro, "SELECT name FROM sqlite_master WHERE type = 'index'")$name
  }, error = function(e) character())
  wanted <- sub("^CREATE INDEX IF NOT EXISTS ([a-z_]+) .*$", "\\1", STATS_INDEXES)
  missing <- STATS_INDEXES[!(wanted %in% have)]
  if (length(missing) == 0) return(invisible(TRUE))
  cat(sprintf("stats: adding %d index(es) to an older database (once)\n", length(missing)))
  ok <- tryCatch({
    rw <- DBI::dbConnect(RSQLite::SQLite(), db, flags = RSQLite::SQLITE_RW)
    on.exit(DBI::dbDisconnect(rw), add = TRUE)
    DBI::dbExecute(rw, "PRAGMA busy_timeout = 5000")
    DBI::dbWithTransaction(rw, for (s in missing) DBI::dbExecute(rw, s))
    TRUE
  }, error = function(e) {
    message("stats: could not add indexes (", conditionMessage(e), "); going on without them, slower")
    FALSE
  })
  invisible(ok)
}

# Start of time bin of a Unix time in SQL: floor((t - start) / size), also below zero.
bin_sql <- function(ctx, col) {
  sprintf("(CASE WHEN %1$s >= %2$.0f THEN (%1$s - %2$.0f) / %3$d ELSE -((%2$.0f - %1$s + %3$d - 1) / %3$d) END)",
          col, ctx$start, as.integer(ctx$bin$size))
}

# Per-torrent figures, defined as `btda report` defines them, each from one aggregate
# query rather than a correlated subquery per torrent (those read the visit table once
# per torrent and figure).
torrent_numbers <- function(ctx) {
  t <- q(ctx, "SELECT id, info_hash, name, total_size, pieces_count, piece_size, complete_threshold,
                      threshold FROM torrent ORDER BY id")
  v <- q(ctx, "SELECT torrent_id, count(*) AS visits, sum(outcome = 'ok') AS visits_ok
               FROM visit GROUP BY torrent_id")
  p <- q(ctx, "SELECT p.torrent_id, count(*) AS peers,
                      sum(p.last_pieces >= t.complete_threshold) AS complete_peers,
                      sum(p.crossed_at IS NOT NULL) AS confirmed,
                      sum(p.crossed_at IS NOT NULL AND p.crossed_strict = 1) AS confirmed_strict
               FROM peer p JOIN torrent t ON t.id = p.torrent_id GROUP BY p.torrent_id")
  # Reached only over MSE: an ok visit that fell back to MSE and no ok plaintext one.
  # The candidates (peers with an ok fallback visit) come from one plain scan (NOT
  # INDEXED: through a partial index on ok visits every row would be a random read) and
  # are few; each is checked through the visit_peer index.
  e <- q(ctx, "SELECT p.torrent_id, count(*) AS encrypted_only FROM peer p
               WHERE p.id IN (SELECT peer_id FROM visit NOT INDEXED WHERE outcome = 'ok' AND fallback = 1)
                 AND NOT EXISTS (SELECT 1 FROM visit v WHERE v.peer_id = p.id AND v.outcome = 'ok'
                                 AND v.encryption IS NULL)
               GROUP BY p.torrent_id")
  r <- q(ctx, "SELECT torrent_id, max(inc) AS tracker_reported FROM (
                 SELECT torrent_id, max(CASE WHEN ok = 1 THEN completed END)
                                    - min(CASE WHEN ok = 1 THEN completed END) AS inc
                 FROM request WHERE source = 'tracker' AND url IS NOT NULL GROUP BY torrent_id, url)
               GROUP BY torrent_id")
  pick <- function(d, col, fill) {
    x <- d[[col]][match(t$id, d$torrent_id)]
    if (is.na(fill)) x else ifelse(is.na(x), fill, x)
  }
  t$peers <- pick(p, "peers", 0)
  t$visits <- pick(v, "visits", 0)
  t$visits_ok <- pick(v, "visits_ok", 0)
  t$complete_peers <- pick(p, "complete_peers", 0)
  t$confirmed <- pick(p, "confirmed", 0)
  t$confirmed_strict <- pick(p, "confirmed_strict", 0)
  t$encrypted_only <- pick(e, "encrypted_only", 0)
  t$tracker_reported <- pick(r, "tracker_reported", NA)
  t
}

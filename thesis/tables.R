# The tables of report.tex (LaTeX fragments) and numbers.csv, the per-torrent figures
# that `btda report --json` must agree with.

fmt_int <- function(x) ifelse(is.na(x), "--", format(x, big.mark = ",", scientific = FALSE, trim = TRUE))
fmt_pct <- function(x) ifelse(is.na(x) | !is.finite(x), "--", sprintf("%.1f\\,\\%%", 100 * x))

tex_table <- function(header, rows, align) {
  c(sprintf("\\begin{tabular}{%s}", align), "\\toprule", paste(header, collapse = " & "), "\\\\ \\midrule",
    if (length(rows) == 0) "\\multicolumn{2}{l}{(none)} \\\\" else paste(rows, "\\\\"),
    "\\bottomrule", "\\end{tabular}")
}

torrent_table <- function(ctx) {
  t <- ctx$torrents
  rows <- if (nrow(t) == 0) character() else sprintf(
    "%s & %s & %s & %s & %s & %s & %s & %s & %s",
    tex_escape(substr(t$name, 1, 28)), ifelse(is.na(t$total_size), "--", sprintf("%.2f", t$total_size / 1e9)),
    fmt_int(t$peers), fmt_int(t$confirmed), fmt_int(t$confirmed_strict), fmt_int(t$tracker_reported),
    fmt_pct(t$confirmed / t$tracker_reported), fmt_pct(t$confirmed / t$peers),
    fmt_pct(t$encrypted_only / t$peers))
  tex_table(c("torrent", "GB", "unique peers", "confirmed", "strict", "tracker-rep.",
              "conf./rep.", "conf./peers", "MSE only"), rows, "lrrrrrrrr")
}

outcome_table <- function(ctx) {
  # Grouped in the order of the visit_torrent_outcome index (no sort of every visit row),
  # then summed per contact in R.
  g <- q(ctx, "SELECT direction, attempt = 1 AS first, outcome, count(*) AS n FROM visit
               GROUP BY torrent_id, outcome, direction, attempt")
  if (nrow(g) > 0) {
    g$contact <- ifelse(g$direction == "in", "incoming", ifelse(!is.na(g$first) & g$first == 1, "first", "later"))
    v <- stats::aggregate(n ~ contact + outcome, g, sum)
  } else {
    v <- data.frame(contact = character(), outcome = character(), n = numeric())
  }
  if (nrow(v) == 0) return(tex_table(c("outcome", "first", "later", "incoming"), character(), "lrrr"))
  outcomes <- names(sort(tapply(v$n, v$outcome, sum), decreasing = TRUE))
  share <- function(contact, o) {
    all <- sum(v$n[v$contact == contact])
    n <- sum(v$n[v$contact == contact & v$outcome == o])
    if (all == 0) "--" else sprintf("%s (%s)", fmt_int(n), fmt_pct(n / all))
  }
  rows <- sapply(outcomes, function(o) paste(tex_escape(o), share("first", o), share("later", o),
                                             share("incoming", o), sep = " & "))
  totals <- sapply(c("first", "later", "incoming"), function(c) fmt_int(sum(v$n[v$contact == c])))
  tex_table(c("outcome", "first contact", "later contacts", "incoming"),
            c(rows, paste("\\midrule all", paste(totals, collapse = " & "), sep = " & ")), "lrrr")
}

source_table <- function(ctx) {
  s <- q(ctx, "SELECT p.source, count(*) AS peers,
                      sum(p.crossed_at IS NOT NULL) AS confirmed
               FROM peer p JOIN torrent t ON t.id = p.torrent_id GROUP BY p.source ORDER BY 2 DESC")
  rows <- if (nrow(s) == 0) character() else sprintf("%s & %s & %s & %s", tex_escape(s$source), fmt_int(s$peers),
                                                      fmt_int(s$confirmed), fmt_pct(s$confirmed / sum(s$confirmed)))
  tex_table(c("source", "peers", "confirmed", "share of confirmed"), rows, "lrrr")
}

# Per torrent: the reason of the visit that witnessed each crossing, the crossings seen
# inside one visit, and those of peers btda only saw because they connected in.
witness_counts <- function(ctx) {
  t <- ctx$torrents
  cols <- c("predicted", "fixed", "first", "retry", "incoming", "incoming_only", "within_visit")
  empty <- as.data.frame(matrix(NA_integer_, nrow(t), length(cols), dimnames = list(NULL, cols)))
  if (nrow(t) == 0 || !("crossed_how" %in% DBI::dbListFields(ctx$con, "peer"))) return(empty)
  w <- q(ctx, "SELECT torrent_id,
                      ifnull(sum(crossed_how = 'predicted'), 0) AS predicted,
                      ifnull(sum(crossed_how = 'fixed'), 0) AS fixed,
                      ifnull(sum(crossed_how = 'first'), 0) AS first,
                      ifnull(sum(crossed_how = 'retry'), 0) AS retry,
                      ifnull(sum(crossed_how = 'incoming'), 0) AS incoming,
                      ifnull(sum(visits_in = visits), 0) AS incoming_only,
                      ifnull(sum(crossed_within = 1), 0) AS within_visit
               FROM peer WHERE crossed_at IS NOT NULL GROUP BY torrent_id")
  out <- w[match(t$id, w$torrent_id), cols]
  out[is.na(out)] <- 0L
  out
}

witness_table <- function(ctx) {
  t <- ctx$torrents
  w <- witness_counts(ctx)
  rows <- if (nrow(t) == 0) character() else sprintf(
    "%s & %s & %s & %s & %s & %s & %s & %s & %s", tex_escape(substr(t$name, 1, 28)), fmt_int(t$confirmed),
    fmt_int(w$predicted), fmt_int(w$fixed), fmt_int(w$first), fmt_int(w$retry), fmt_int(w$incoming),
    fmt_int(w$incoming_only), fmt_int(w$within_visit))
  tex_table(c("torrent", "confirmed", "predicted", "fixed", "first visit", "retry", "incoming",
              "incoming-only", "inside one visit"), rows, "lrrrrrrrr")
}

run_lines <- function(ctx) {
  r <- ctx$run
  if (nrow(r) == 0) return("No run row in this database.")
  when <- function(t) if (is.na(t)) "--" else format(as.POSIXct(t, origin = "1970-01-01", tz = "UTC"), "%Y-%m-%d %H:%M UTC")
  runs <- ctx$runs
  if (!is.null(runs) && nrow(runs) > 1) {
    ends <- runs$ended_at[!is.na(runs$ended_at)]
    return(sprintf("Merged from %d runs (btda merge) on hosts %s, from %s to %s; %d torrents.",
                   nrow(runs), tex_escape(paste(runs$hostname, collapse = ", ")),
                   when(min(runs$started_at)), when(if (length(ends) > 0) max(ends) else NA),
                   nrow(ctx$torrents)))
  }
  sprintf("Run on %s, btda %s, from %s to %s (%s); %d torrents.", tex_escape(r$hostname[1]),
          tex_escape(r$version[1]), when(r$started_at[1]), when(r$ended_at[1]),
          tex_escape(ifelse(is.na(r$end_reason[1]), "not ended", r$end_reason[1])), nrow(ctx$torrents))
}

write_tables <- function(ctx) {
  writeLines(c("\\newcommand{\\btdarun}{", run_lines(ctx), "}",
               "\\newcommand{\\btdatorrents}{", torrent_table(ctx), "}",
               "\\newcommand{\\btdaoutcomes}{", outcome_table(ctx), "}",
               "\\newcommand{\\btdasources}{", source_table(ctx), "}",
               "\\newcommand{\\btdawitnessed}{", witness_table(ctx), "}"),
             file.path(ctx$out, "tables.tex"))
  t <- ctx$torrents
  p <- ctx$threshold_peers
  at_run <- sapply(seq_len(nrow(t)), function(i) {
    mine <- p[p$torrent_id == t$id[i], ]
    confirmed_at(mine, rep(t$complete_threshold[i], nrow(mine)))
  })
  utils::write.csv(data.frame(info_hash = t$info_hash, peers = t$peers, visits = t$visits,
                              visits_ok = t$visits_ok, complete_peers = t$complete_peers,
                              confirmed = t$confirmed,
                              confirmed_strict = t$confirmed_strict,
                              encrypted_only = t$encrypted_only,
                              tracker_reported = t$tracker_reported,
                              threshold_confirmed = as.integer(at_run),
                              witness_counts(ctx)),
                   file.path(ctx$out, "numbers.csv"), row.names = FALSE, na = "")
}

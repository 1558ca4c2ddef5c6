# The figures of `make stats`, one function each, named as in the thesis. Each takes
# the context built by stats.R and returns list(pages = list of ggplots, captions = ...).
# A figure without data returns a page that says so.

library(ggplot2)

# Log axes with the same range on x and y, so the identity line is the diagonal.
same_log_axes <- function(values) {
  lims <- range(values) * c(0.8, 1.25)
  list(scale_x_log10(limits = lims), scale_y_log10(limits = lims), coord_fixed())
}

per_torrent_numbers <- function(ctx) {
  t <- ctx$torrents
  t$size_gb <- t$total_size / 1e9
  t
}

download_confirmed_scrape <- function(ctx) {
  t <- per_torrent_numbers(ctx)
  t1 <- t[!is.na(t$tracker_reported) & t$tracker_reported > 0 & t$confirmed > 0 & t$size_gb > 0, ]
  p1 <- if (nrow(t1) == 0) no_data("Confirmed / tracker-reported downloads by size",
                                   "no torrent with both confirmed and tracker-reported downloads")
  else ggplot(t1, aes(size_gb, confirmed / tracker_reported)) + geom_point(size = 2) +
    scale_x_log10() + scale_y_log10() +
    labs(title = "Confirmed / tracker-reported downloads by size",
         x = "torrent size (GB, log)", y = "confirmed / tracker-reported (log)") + theme_btda()
  t2 <- t[!is.na(t$tracker_reported) & t$tracker_reported > 0 & t$confirmed > 0, ]
  p2 <- if (nrow(t2) == 0) no_data("Confirmed against tracker-reported downloads",
                                   "no torrent with both figures above zero")
  else ggplot(t2, aes(tracker_reported, confirmed)) + geom_abline(linetype = "dashed") +
    geom_point(size = 2) + same_log_axes(c(t2$tracker_reported, t2$confirmed)) +
    labs(title = "Confirmed against tracker-reported downloads",
         x = "tracker-reported (log)", y = "confirmed (log); dashed: identity") + theme_btda()
  list(pages = list(p1, p2), captions = c(
    "Confirmed downloads as a share of the tracker-reported ones (increase of the scrape's downloaded count during the run), per torrent, against torrent size.",
    "Confirmed against tracker-reported downloads per torrent; the dashed line is equality."))
}

download_confirmed_unique <- function(ctx) {
  t <- per_torrent_numbers(ctx)
  t1 <- t[t$peers > 0 & t$confirmed > 0 & t$size_gb > 0, ]
  p1 <- if (nrow(t1) == 0) no_data("Confirmed downloads / unique peers by size", "no confirmed downloads")
  else ggplot(t1, aes(size_gb, confirmed / peers)) + geom_point(size = 2) +
    scale_x_log10() + scale_y_log10() +
    labs(title = "Confirmed downloads / unique peers by size",
         x = "torrent size (GB, log)", y = "confirmed / unique peers (log)") + theme_btda()
  t2 <- t[t$peers > 0 & t$confirmed > 0, ]
  p2 <- if (nrow(t2) == 0) no_data("Confirmed downloads against unique peers", "no confirmed downloads")
  else ggplot(t2, aes(peers, confirmed)) + geom_abline(linetype = "dashed") + geom_point(size = 2) +
    same_log_axes(c(t2$peers, t2$confirmed)) +
    labs(title = "Confirmed downloads against unique peers",
         x = "unique peers with a successful visit (log)", y = "confirmed (log); dashed: identity") +
    theme_btda()
  list(pages = list(p1, p2), captions = c(
    "Confirmed downloads as a share of the unique peers btda reached, per torrent, against torrent size.",
    "Confirmed downloads against unique peers per torrent; the dashed line is equality."))
}

# Cumulative confirmed and tracker-reported downloads per bin for the torrents `ids`.
download_series <- function(ctx, ids) {
  last <- bin_of(ctx, ctx$end)
  ids_sql <- paste(ids, collapse = ",")
  c <- q(ctx, paste0("SELECT crossed_at FROM confirmed_download WHERE torrent_id IN (", ids_sql, ")"))
  conf <- cumulative(bin_of(ctx, c$crossed_at), rep(1, nrow(c)), last)
  # Tracker-reported: per torrent, the tracker whose scrapes rose most, relative to its
  # first figure of the run.
  rep_total <- data.frame(bin = 0:max(0, last), n = 0)
  for (id in ids) {
    r <- q(ctx, "SELECT url, at, completed FROM request WHERE torrent_id = ? AND source = 'tracker'
                 AND ok = 1 AND completed IS NOT NULL ORDER BY at", list(id))
    if (nrow(r) == 0) next
    rise <- tapply(r$completed, r$url, function(x) max(x) - min(x))
    best <- r[r$url == names(rise)[which.max(rise)], ]
    inc <- diff(c(best$completed[1], best$completed))
    rep_total$n <- rep_total$n + cumulative(bin_of(ctx, best$at), inc, last)$n
  }
  rbind(data.frame(bin = conf$bin, n = conf$n, what = "confirmed (btda)"),
        data.frame(bin = rep_total$bin, n = rep_total$n, what = "tracker-reported"))
}

download_plot <- function(ctx, ids, title) {
  s <- download_series(ctx, ids)
  if (all(s$n == 0)) return(no_data(title, "no confirmed or tracker-reported downloads"))
  ggplot(s, aes(bin, n, colour = what)) + geom_step() +
    labs(title = title, x = ctx$bin$label, y = "downloads (cumulative)", colour = NULL) + theme_btda()
}

# One page per torrent drawn by `plot(ctx, torrent_id, title)`, titled "<what>: name",
# captioned "<caption> name (hash)."; one "no data" page when there is no torrent.
per_torrent <- function(ctx, plot, what, caption) {
  t <- ctx$torrents
  if (nrow(t) == 0) return(list(pages = list(no_data(paste(what, "per torrent"), "no torrents")),
                                captions = paste(what, "per torrent.")))
  pages <- lapply(seq_len(nrow(t)), function(i) plot(ctx, t$id[i], paste0(what, ": ", t$name[i])))
  list(pages = pages, captions = paste0(caption, " ", tex_escape(t$name), " (", substr(t$info_hash, 1, 8), ")."))
}

download_each <- function(ctx) {
  per_torrent(ctx, download_plot, "Downloads", "Cumulative confirmed and tracker-reported downloads of")
}

download_set <- function(ctx) {
  t <- ctx$torrents
  sets <- sort(unique(t$set))
  if (length(sets) == 0) return(list(pages = list(no_data("Downloads per set", "no torrents")),
                                     captions = "Downloads per set of torrents."))
  pages <- lapply(sets, function(s) download_plot(ctx, t$id[t$set == s], paste("Downloads: set", s)))
  list(pages = pages, captions = paste0("Cumulative confirmed and tracker-reported downloads summed over set ",
                                        tex_escape(sets), " (", sapply(sets, function(s) sum(t$set == s)),
                                        " torrents)."))
}

# Peer addresses per torrent, source and time bin, summed in SQLite and read once for
# both source figures: tracker and DHT from their `request` rows (new and duplicate peers
# received); incoming from the incoming visits (a peer's first connection in is new when
# the peer was first heard of that way — no visit of it before, looked up in the
# visit_peer index — every other one a duplicate); PEX from the peers first named by PEX
# (new only).
source_counts <- function(ctx) {
  if (!is.null(ctx$cache$sources)) return(ctx$cache$sources)
  d <- q(ctx, sprintf("
    SELECT torrent_id, %s AS bin, source, sum(new) AS new, sum(dup) AS dup FROM (
      SELECT torrent_id, at, source, coalesce(new_peers, 0) AS new, coalesce(duplicate_peers, 0) AS dup
      FROM request WHERE new_peers IS NOT NULL OR duplicate_peers IS NOT NULL
      UNION ALL
      SELECT torrent_id, at, 'incoming', first, 1 - first FROM (
        SELECT v.torrent_id, v.started_at AS at,
               (p.source = 'incoming' AND NOT EXISTS (SELECT 1 FROM visit w
                  WHERE w.peer_id = v.peer_id AND w.id < v.id)) AS first
        FROM visit v NOT INDEXED JOIN peer p ON p.id = v.peer_id WHERE v.direction = 'in')
      UNION ALL
      SELECT torrent_id, first_seen, 'pex', 1, 0 FROM peer WHERE source = 'pex')
    GROUP BY 1, 2, 3", bin_sql(ctx, "at")))
  if (is.environment(ctx$cache)) ctx$cache$sources <- d
  d
}

source_data <- function(ctx, ids = NULL) {
  r <- source_counts(ctx)
  if (!is.null(ids)) r <- r[!is.na(r$torrent_id) & r$torrent_id %in% ids, ]
  if (nrow(r) == 0) return(data.frame(bin = numeric(), source = character(), kind = character(), n = numeric()))
  a <- stats::aggregate(cbind(new, dup) ~ bin + source, data = r, FUN = sum)
  rbind(data.frame(bin = a$bin, source = a$source, kind = "new", n = a$new),
        data.frame(bin = a$bin, source = a$source, kind = "duplicate", n = a$dup))
}

source_plot <- function(ctx, ids, title) {
  d <- source_data(ctx, ids)
  if (nrow(d) == 0 || sum(d$n) == 0) return(no_data(title, "no peers received"))
  ggplot(d, aes(bin, n, fill = kind)) + geom_col() + facet_wrap(~source, scales = "free_y") +
    labs(title = title, x = ctx$bin$label, y = "peer addresses received", fill = NULL) + theme_btda()
}

source_all_torrents <- function(ctx) {
  list(pages = list(source_plot(ctx, NULL, "Peer sources, all torrents")),
       captions = "New and duplicate peer addresses per time bin by source (tracker, DHT, incoming, PEX), all torrents.")
}

source_per_torrent <- function(ctx) {
  per_torrent(ctx, source_plot, "Peer sources", "New and duplicate peer addresses per time bin by source for")
}

visits <- function(ctx) {
  # Peers per (source, visits), counted in SQLite: a campaign has millions of peers.
  p <- q(ctx, "SELECT source, visits, count(*) AS n FROM peer GROUP BY 1, 2 ORDER BY 1, 2")
  if (nrow(p) == 0) {
    n <- no_data("Visits per peer", "no peer with a successful visit")
    return(list(pages = list(n, n), captions = c("Visits per peer by source.", "ECDF of visits per peer.")))
  }
  p$capped <- factor(ifelse(p$visits >= 20, "20+", as.character(p$visits)),
                     levels = c(as.character(1:19), "20+"))
  b <- stats::aggregate(n ~ source + capped, p, sum)
  bars <- ggplot(b, aes(capped, n, fill = source)) + geom_col(position = "dodge") +
    labs(title = "Visits per peer", x = "successful visits", y = "peers", fill = "source") + theme_btda()
  p$share <- stats::ave(p$n, p$source, FUN = function(x) cumsum(x) / sum(x))
  ecdf <- ggplot(p, aes(pmax(visits, 1), share, colour = source)) + geom_step() + scale_x_log10() +
    labs(title = "Visits per peer (ECDF)", x = "successful visits (log)", y = "share of peers",
         colour = "source") + theme_btda()
  list(pages = list(bars, ecdf), captions = c(
    "Successful visits per peer by the source that first named it, up to 20.",
    "Empirical distribution of successful visits per peer by source."))
}

speed_data <- function(ctx) {
  d <- q(ctx, "SELECT p.country, p.max_speed * t.piece_size / 1000.0 AS kbs FROM peer p
               JOIN torrent t ON t.id = p.torrent_id
               WHERE p.max_speed IS NOT NULL AND p.max_speed > 0 AND p.country IS NOT NULL")
  d
}

speed_plot <- function(ctx) {
  d <- speed_data(ctx)
  if (nrow(d) == 0) return(list(pages = list(no_data("Download speed by country",
                                                     "no peer with a country and a measured speed")),
                                captions = "Maximum download speed per peer by country."))
  top <- names(sort(table(d$country), decreasing = TRUE))[seq_len(min(10, length(unique(d$country))))]
  d <- d[d$country %in% top, ]
  d$country <- factor(d$country, levels = top)
  p <- ggplot(d, aes(country, kbs)) + geom_boxplot(outlier.size = 0.5) + scale_y_log10() +
    labs(title = "Download speed by country", x = "country (most peers first)",
         y = "max download speed (kB/s, log)") + theme_btda()
  list(pages = list(p), captions = "Maximum download speed per peer (between consecutive visits), for the ten countries with most peers.")
}

world_map <- function(values, title, fill_label, why) {
  world <- ggplot2::map_data("world")
  regions <- unique(world$region)
  iso <- suppressWarnings(maps::iso.alpha(regions, n = 2))
  world$iso2 <- iso[match(world$region, regions)]
  world$value <- if (nrow(values) == 0) NA else values$value[match(world$iso2, values$country)]
  p <- ggplot(world, aes(long, lat, group = group, fill = value)) +
    geom_polygon(colour = "grey60", linewidth = 0.1) + coord_quickmap() +
    scale_fill_continuous(trans = "log10", na.value = "grey95") +
    labs(title = title, x = NULL, y = NULL, fill = fill_label) + theme_btda()
  if (nrow(values) == 0) p <- p + labs(subtitle = paste("No data:", why))
  p
}

speed_map <- function(ctx) {
  d <- speed_data(ctx)
  v <- if (nrow(d) == 0) data.frame(country = character(), value = numeric())
  else stats::setNames(stats::aggregate(d$kbs, list(d$country), stats::median), c("country", "value"))
  list(pages = list(world_map(v, "Median download speed by country", "kB/s",
                              "no peer with a country and a measured speed")),
       captions = "Median of the peers' maximum download speeds per country.")
}

location_map <- function(ctx) {
  d <- q(ctx, "SELECT country, count(*) AS value FROM peer WHERE country IS NOT NULL GROUP BY country")
  list(pages = list(world_map(d, "Peers by country", "peers", "no peer with a country")),
       captions = "Peers (with a successful visit) per country.")
}

top_bar <- function(d, title, x, why) {
  if (nrow(d) == 0) return(no_data(title, why))
  d <- d[order(-d$n), ][seq_len(min(15, nrow(d))), ]
  d$label <- factor(d$label, levels = rev(d$label))
  ggplot(d, aes(label, n)) + geom_col() + coord_flip() +
    labs(title = title, x = x, y = "peers") + theme_btda()
}

isp <- function(ctx) {
  a <- q(ctx, "SELECT as_org AS label, count(*) AS n FROM peer WHERE as_org IS NOT NULL GROUP BY as_org")
  r <- q(ctx, "SELECT rdns_domain AS label, count(*) AS n FROM peer WHERE rdns_domain IS NOT NULL GROUP BY rdns_domain")
  list(pages = list(top_bar(a, "Top ISPs by AS organisation", "AS organisation", "no peer with an AS"),
                    top_bar(r, "Top ISPs by reverse-DNS domain", "domain", "no reverse DNS (geo.reverse_dns off)")),
       captions = c("The 15 AS organisations with most peers.", "The 15 reverse-DNS domains with most peers."))
}

clients <- function(ctx) {
  d <- q(ctx, "SELECT coalesce(client, 'unknown') AS label, count(*) AS n FROM peer GROUP BY 1")
  list(pages = list(top_bar(d, "Client mix", "client (from the peer id)", "no peer with a successful visit")),
       captions = "Clients of the peers, decoded from their peer ids (15 most common).")
}

workload <- function(ctx) {
  s <- q(ctx, "SELECT * FROM statistic ORDER BY at")
  if (nrow(s) == 0) return(list(pages = list(no_data("Workload", "no statistic samples")),
                                captions = "Monitoring samples over time."))
  cols <- setdiff(names(s), c("id", "at"))
  long <- do.call(rbind, lapply(cols, function(c)
    data.frame(t = (s$at - ctx$start) / ctx$bin$size, variable = c, value = as.numeric(s[[c]]))))
  long <- long[!is.na(long$value), ]
  p <- ggplot(long, aes(t, value)) + geom_line() + facet_wrap(~variable, scales = "free_y", ncol = 4) +
    labs(title = "Workload", x = ctx$bin$label, y = NULL) + theme_btda() +
    theme(strip.text = element_text(size = 7), axis.text = element_text(size = 6))
  list(pages = list(p), captions = "Every column of the statistic table over time: queue lengths, busy workers, workload, incoming handlers, writer backlog, memory, load, open files, incoming tallies and confirmed downloads.")
}

# When a peer counts at threshold T: some observation of it (each ok visit observes the
# count at its first piece-state message, when it recorded one, and at its end; state
# `none` is 0 pieces and `invalid` observes nothing) is at or above T and an earlier one
# is below T, in the same visit or an earlier one (the confirmed_download rule). So every
# observation o_j adds the range (m_j, o_j] of thresholds, m_j the lowest earlier
# observation, and a peer counts at T when T lies in the union of its ranges.
#
# SQLite computes m per visit with one window function over the ok visits (read in one
# plain scan: NOT INDEXED keeps the planner off the partial indexes of ok visits, which
# would cost a random read per row; the first
# observation of visit j has m_j, its end min(m_j, first)), and keeps per peer and
# distinct m only the highest o: a range with the same left end and a lower right end
# adds nothing. R then merges each peer's ranges into disjoint intervals (lo, hi], so the
# peers counted at T are the intervals with lo < T <= hi (no per-threshold unique()).
threshold_peers <- function(ctx) {
  d <- q(ctx, "
    WITH v AS (
      SELECT peer_id, torrent_id, first_pieces AS fp, coalesce(pieces, 0) AS p,
             min(min(coalesce(first_pieces, coalesce(pieces, 0)), coalesce(pieces, 0)))
               OVER (PARTITION BY peer_id ORDER BY id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m
      FROM visit NOT INDEXED
      WHERE outcome = 'ok' AND peer_id IS NOT NULL AND coalesce(state, '') <> 'invalid'),
    o AS (
      SELECT peer_id, torrent_id, m AS lo, fp AS hi FROM v WHERE fp IS NOT NULL AND m IS NOT NULL
      UNION ALL
      SELECT peer_id, torrent_id, min(coalesce(m, fp), coalesce(fp, m)) AS lo, p AS hi FROM v)
    SELECT peer_id, torrent_id, lo, max(hi) AS hi FROM o WHERE lo IS NOT NULL
    GROUP BY peer_id, lo HAVING max(hi) > lo")
  if (nrow(d) == 0) return(data.frame(peer_id = integer(), torrent_id = integer(),
                                      lo = numeric(), hi = numeric()))
  merge_ranges(d)
}

# Merges each peer's ranges (lo, hi] into disjoint ones, vectorised: rows sorted by peer
# and lo; a running maximum of hi within each peer (one global cummax over hi shifted by
# the peer's rank, since hi < span); a range starts a new interval when its lo is above
# every earlier hi of its peer (touching ranges (a, b] and (b, c] are one).
merge_ranges <- function(d) {
  d <- d[order(d$peer_id, d$lo), ]
  lo <- as.numeric(d$lo)
  hi <- as.numeric(d$hi)
  span <- max(hi) + 1
  rank <- cumsum(c(TRUE, d$peer_id[-1] != d$peer_id[-nrow(d)]))
  reach <- cummax(hi + rank * span) - rank * span
  first <- c(TRUE, rank[-1] != rank[-length(rank)])
  before <- c(-Inf, reach[-length(reach)])
  start <- first | lo > before
  island <- cumsum(start)
  last <- c(island[-1] != island[-length(island)], TRUE)
  data.frame(peer_id = d$peer_id[start], torrent_id = d$torrent_id[start],
             lo = lo[start], hi = reach[last])
}

# Peers confirmed when each interval's threshold in pieces is `t` (NA: never): the
# intervals are disjoint per peer, so each one that holds t is one peer.
confirmed_at <- function(peers, t) {
  sum(!is.na(t) & peers$lo < t & peers$hi >= t)
}

threshold_count <- function(peers, torrents, x) {
  n <- torrents$pieces_count[match(peers$torrent_id, torrents$id)]
  confirmed_at(peers, ceiling(x * n - 1e-9))
}

threshold <- function(ctx) {
  p <- ctx$threshold_peers
  xs <- seq(0.02, 0.98, by = 0.02)
  d <- data.frame(x = xs, n = sapply(xs, function(x) threshold_count(p, ctx$torrents, x)))
  if (sum(d$n) == 0) return(list(pages = list(no_data("Confirmed downloads by threshold",
                                                      "no peer seen below and later above any threshold")),
                                 captions = "Confirmed downloads as the completion threshold varies."))
  conf <- if (nrow(ctx$torrents) > 0) ctx$torrents$threshold[1] else 0.98
  g <- ggplot(d, aes(x, n)) + geom_line() + geom_point(size = 1) +
    geom_vline(xintercept = conf, linetype = "dashed") +
    labs(title = "Confirmed downloads by threshold", x = "completion threshold (share of pieces)",
         y = "confirmed downloads, all torrents") + theme_btda()
  list(pages = list(g), captions = sprintf("Confirmed downloads computed from the visit rows as the threshold varies from 0.02 to 0.98; dashed: the run's threshold (%.2f).", conf))
}

tracker_requests <- function(ctx) {
  r <- q(ctx, "SELECT r.url, t.name, r.kind, r.ok, coalesce(r.error, 'ok') AS error FROM request r
               JOIN torrent t ON t.id = r.torrent_id WHERE r.source = 'tracker'")
  if (nrow(r) == 0) {
    n <- no_data("Tracker requests", "no tracker requests")
    return(list(pages = list(n, n), captions = c("Tracker requests.", "Tracker errors.")))
  }
  r$result <- ifelse(r$ok == 1, "success", "failure")
  r$where <- paste(substr(r$name, 1, 20), tracker_label(r$url), sep = " @ ")
  a <- ggplot(r, aes(where, fill = result)) + geom_bar() + facet_wrap(~kind, scales = "free_x") + coord_flip() +
    labs(title = "Tracker requests", x = NULL, y = "requests", fill = NULL) + theme_btda() +
    theme(axis.text.y = element_text(size = 6))
  f <- r[r$ok == 0, ]
  b <- if (nrow(f) == 0) no_data("Tracker errors", "every tracker request succeeded")
  else ggplot(f, aes(error, fill = kind)) + geom_bar() + coord_flip() +
    labs(title = "Tracker errors", x = "error class", y = "requests", fill = NULL) + theme_btda()
  list(pages = list(a, b), captions = c("Announce, scrape and stopped requests per torrent and tracker, successes and failures.",
                                        "Failed tracker requests by error class."))
}

timeouts <- function(ctx) {
  # Counts per distinct millisecond value, aggregated in SQLite (a campaign has tens of
  # millions of visits; the values are integers below the visit cap, so each metric is
  # at most a few tens of thousands of rows): the ECDF drawn from them is the same
  # step function as from every row.
  counts <- do.call(rbind, lapply(c("connect_ms", "handshake_ms", "max_gap_ms"), function(m) {
    d <- q(ctx, sprintf("SELECT %s AS ms, count(*) AS n FROM visit WHERE outcome = 'ok'
                         AND %s IS NOT NULL GROUP BY 1 ORDER BY 1", m, m))
    if (nrow(d) == 0) return(NULL)
    d$metric <- m
    d$share <- cumsum(d$n) / sum(d$n)
    d
  }))
  # The timeouts in force at the end of the run: measured ("auto") ones from the last
  # statistic row, else the configured numbers.
  chosen <- q(ctx, "SELECT connect_timeout_ms, handshake_timeout_ms FROM statistic
                    WHERE connect_timeout_ms IS NOT NULL ORDER BY at DESC, id DESC LIMIT 1")
  in_force <- function(col, key, default) {
    if (nrow(chosen) > 0 && !is.na(chosen[[col]][1])) as.numeric(chosen[[col]][1])
    else config_number(ctx$config, "peer", key, default)
  }
  cfg <- data.frame(metric = c("connect_ms", "handshake_ms", "max_gap_ms"),
                    limit = c(in_force("connect_timeout_ms", "connect_timeout_ms", 5000),
                              in_force("handshake_timeout_ms", "handshake_timeout_ms", 6000),
                              config_number(ctx$config, "peer", "silence_timeout_ms", 6000)))
  if (is.null(counts) || nrow(counts) == 0) {
    n <- no_data("Timing of successful visits", "no successful visit")
    return(list(pages = list(n, n), captions = c("Timing of successful visits.", "Share kept by each timeout.")))
  }
  e <- ggplot(counts, aes(pmax(ms, 1), share)) + geom_step() + scale_x_log10() +
    geom_vline(data = cfg, aes(xintercept = limit), linetype = "dashed", colour = "red") +
    facet_wrap(~metric, scales = "free_x") +
    labs(title = "Timing of successful visits", x = "ms (log); dashed: timeout in force at the end",
         y = "share of successful visits") + theme_btda()
  grid <- c(100, 200, 500, 1000, 2000, 3000, 5000, 8000, 10000, 15000, 20000)
  kept <- do.call(rbind, lapply(unique(counts$metric), function(m) {
    d <- counts[counts$metric == m, ]
    data.frame(metric = m, timeout = grid, kept = sapply(grid, function(g) sum(d$n[d$ms <= g]) / sum(d$n)))
  }))
  k <- ggplot(kept, aes(timeout, kept, colour = metric)) + geom_line() + geom_point(size = 1) +
    scale_x_log10() + geom_vline(data = cfg, aes(xintercept = limit, colour = metric), linetype = "dashed") +
    labs(title = "Share of successful contacts each timeout keeps", x = "timeout (ms, log)",
         y = "share kept", colour = NULL) + theme_btda()
  list(pages = list(e, k), captions = c(
    "Empirical distributions of connect time, handshake time and the longest gap between messages in successful visits; dashed: the timeouts in force at the end of the run (measured ones when set to auto: the cut btda chose on this distribution).",
    "The share of successful contacts that would have been kept with each timeout (the calibration the 2015 thesis did by hand)."))
}

# How each crossing was witnessed (peer.crossed_how, the reason of the visit that saw
# it) and, for crossings that had a prediction, the predicted time against the observed
# one. Databases from before btda recorded this have no such columns: "no data" pages.
crossing_prediction <- function(ctx) {
  captions <- c(
    "Crossing time predicted from the peer's own rate at its last visit below the threshold, against the observed crossing (since the run's start); dashed: identity. Points below the line were predicted early (the revisit then predicts again), above it late.",
    "Confirmed downloads per torrent by how they were witnessed: the reason of the visit that saw the crossing (a predicted revisit, the fixed revisit delay, the first visit, a retry, or an incoming connection); incoming-only marks peers btda never reached itself.")
  if (!("crossed_how" %in% DBI::dbListFields(ctx$con, "peer"))) {
    n <- no_data("Predicted against observed crossing times", "the database predates predictive revisits")
    return(list(pages = list(n, no_data("Crossings by how they were witnessed", "no crossed_how column")),
                captions = captions))
  }
  p <- q(ctx, "SELECT torrent_id, crossed_at, predicted_at, crossed_how, visits_in = visits AS incoming_only
               FROM peer WHERE crossed_at IS NOT NULL")
  pred <- p[!is.na(p$predicted_at), ]
  p1 <- if (nrow(pred) == 0) no_data("Predicted against observed crossing times", "no crossing had a prediction")
  else {
    # Minutes for runs of 20 minutes or more, seconds below (a demo run).
    unit <- if (ctx$end - ctx$start >= 1200) c(60, "minutes") else c(1, "seconds")
    pred$observed <- (pred$crossed_at - ctx$start) / as.numeric(unit[1])
    pred$predicted <- (pred$predicted_at - ctx$start) / as.numeric(unit[1])
    ggplot(pred, aes(predicted, observed, colour = crossed_how)) + geom_abline(linetype = "dashed") +
      geom_point(size = 1.5, alpha = 0.7) + coord_equal() +
      labs(title = "Predicted against observed crossing times",
           x = sprintf("predicted (%s since start)", unit[2]),
           y = sprintf("observed (%s since start)", unit[2]), colour = "witnessed by") + theme_btda()
  }
  p2 <- if (nrow(p) == 0) no_data("Crossings by how they were witnessed", "no confirmed downloads")
  else {
    p$how <- ifelse(p$crossed_how == "incoming" & p$incoming_only == 1, "incoming (incoming-only peer)",
                    ifelse(is.na(p$crossed_how), "unknown", p$crossed_how))
    p$torrent <- substr(ctx$torrents$name[match(p$torrent_id, ctx$torrents$id)], 1, 24)
    ggplot(p, aes(torrent, fill = how)) + geom_bar() + coord_flip() +
      labs(title = "Crossings by how they were witnessed", x = NULL, y = "confirmed downloads",
           fill = "witnessed by") + theme_btda()
  }
  list(pages = list(p1, p2), captions = captions)
}

# Swarm size four ways, per torrent, as `btda report` prints it: the tracker scrape
# (seeders + leechers of the latest scrape of the tracker reporting most), the DHT scrape
# (BEP 33 estimate of seeds + peers of the latest lookup that carried one; databases from
# before it have no such column), the peers btda reached, and the confirmed downloads.
swarm_size <- function(ctx) {
  t <- ctx$torrents
  title <- "Swarm size: tracker scrape, DHT scrape, peers reached, confirmed"
  if (nrow(t) == 0) return(list(pages = list(no_data(title, "no torrent")),
                                captions = "Swarm size per torrent: no torrent."))
  cols <- q(ctx, "SELECT name FROM pragma_table_info('request')")$name
  dht <- if ("dht_peers_estimate" %in% cols) q(ctx, "
    SELECT r.torrent_id, r.dht_seeds_estimate + r.dht_peers_estimate AS n FROM request r
    WHERE r.source = 'dht' AND r.dht_peers_estimate IS NOT NULL
      AND r.id = (SELECT max(id) FROM request x WHERE x.torrent_id = r.torrent_id
                  AND x.source = 'dht' AND x.dht_peers_estimate IS NOT NULL)") else
    data.frame(torrent_id = integer(0), n = numeric(0))
  tracker <- q(ctx, "
    SELECT r.torrent_id, max(r.seeders + r.leechers) AS n FROM request r
    WHERE r.source = 'tracker' AND r.ok = 1 AND r.seeders IS NOT NULL
      AND r.id = (SELECT max(id) FROM request x WHERE x.torrent_id = r.torrent_id
                  AND x.url = r.url AND x.source = 'tracker' AND x.ok = 1 AND x.seeders IS NOT NULL)
    GROUP BY r.torrent_id")
  label <- paste0(substr(t$name, 1, 24), " (", substr(t$info_hash, 1, 8), ")")
  what <- c("tracker scrape (seeders + leechers)", "DHT scrape (BEP 33 estimate)",
            "peers reached by btda", "confirmed downloads")
  d <- rbind(
    data.frame(torrent = label, what = what[1], n = tracker$n[match(t$id, tracker$torrent_id)]),
    data.frame(torrent = label, what = what[2], n = dht$n[match(t$id, dht$torrent_id)]),
    data.frame(torrent = label, what = what[3], n = t$peers),
    data.frame(torrent = label, what = what[4], n = t$confirmed))
  d <- d[!is.na(d$n), ]
  d$what <- factor(d$what, levels = what)
  p <- ggplot(d, aes(torrent, n, fill = what)) + geom_col(position = position_dodge(preserve = "single")) +
    coord_flip() + labs(title = title, x = NULL, y = "peers (scrapes: swarm size; DHT: an estimate)", fill = NULL) +
    guides(fill = guide_legend(nrow = 2)) + theme_btda()
  list(pages = list(p), captions = paste(
    "Per torrent, side by side: the tracker scrape (seeders + leechers of the latest scrape of the tracker reporting most: the swarm at that moment),",
    "the DHT scrape (BEP 33: distinct seeds + peers estimated from the merged Bloom filters of the latest lookup that carried them; an estimate, not a count),",
    "the peers btda reached during the run, and its confirmed downloads. A missing bar: no such figure in the run."))
}

FIGURES <- c("download_confirmed_scrape", "download_confirmed_unique", "download_each", "download_set",
             "source_all_torrents", "source_per_torrent", "visits", "speed_plot", "speed_map",
             "location_map", "isp", "clients", "workload", "threshold", "tracker_requests", "timeouts",
             "crossing_prediction", "swarm_size")

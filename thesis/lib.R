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
